"""Batched sampling with a KV cache that passes the model's own position ids, and the `generate` path.

`transformers`' `generate` derives position ids from the attention mask, so it cannot drive a model
trained with digit-index positions. `sample_tokens` calls the same `model.forward` with a KV cache
(`batch_cache`: a preallocated static one) and asks a position scheme for each new
token's id. With sequential positions it reproduces `generate` token for token under greedy
decoding (tested), so it is a drop-in for any HF model.

Both paths stop a row at any of the model's end-of-sequence ids (the tokenizer's and the generation
config's: chat models end a turn with their own token), at its budget, or where the task's `Stop` says
the completion has ended, so a base model that goes on with the next few-shot question is cut off
as soon as it starts it.
"""

from __future__ import annotations

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from selftaught.generation.prefix import SharedPrefix, batch_cache, keeps_logits, padded_batch
from selftaught.generation.sampling import GREEDY, Sampling
from selftaught.models.positions import PositionScheme
from selftaught.tasks.stops import Stop


def eos_ids(model, tokenizer) -> list[int]:
    """Every token id that ends a sequence: the tokenizer's EOS and the generation config's."""
    ids = [tokenizer.eos_token_id]
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids += configured if isinstance(configured, list) else [configured]
    return sorted({i for i in ids if i is not None})


def _pick(logits: torch.Tensor, sampling: Sampling, generator) -> torch.Tensor:
    if sampling.greedy:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / sampling.temperature, dim=-1)
    if sampling.top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        drop = sorted_probs.cumsum(-1) - sorted_probs > sampling.top_p  # keep the first token always
        sorted_probs = sorted_probs.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def _budgets(max_new_tokens: int | list[int], count: int) -> list[int]:
    return [max_new_tokens] * count if isinstance(max_new_tokens, int) else list(max_new_tokens)


def trim(rows: list[list[int]], ends: list[int], budgets: list[int]) -> list[list[int]]:
    """Each row up to its first end-of-sequence id (excluded) and its budget."""
    out = []
    for row, budget in zip(rows, budgets):
        row = row[:budget]
        cut = next((k for k, token in enumerate(row) if token in ends), len(row))
        out.append(row[:cut])
    return out


def _stopped(tokenizer, new_tokens: list[torch.Tensor], active: torch.Tensor, stop: Stop) -> torch.Tensor:
    """Which active rows' text so far has reached the task's end (decoded, since stops are text)."""
    rows = active.nonzero().flatten().tolist()
    ended = torch.zeros_like(active)
    if not rows:
        return ended
    generated = torch.stack(new_tokens, dim=1)[rows].tolist()
    for row, text in zip(rows, tokenizer.batch_decode(generated, skip_special_tokens=True)):
        ended[row] = stop.find_end(text) is not None
    return ended


def encode(tokenizer, prompts: list[str], add_special_tokens: bool = True) -> list[list[int]]:
    return tokenizer(prompts, add_special_tokens=add_special_tokens)["input_ids"]


def _first_forward(model, scheme: PositionScheme, ids, mask, pads, prefix: SharedPrefix | None, max_new_tokens: int):
    """Last-position logits for the batch's prompts (only the part after a shared prefix is computed),
    and the state of the position scheme."""
    positions, state = scheme.full(ids, mask)
    start = len(prefix.ids) if prefix else 0
    cache = batch_cache(model.config, prefix, pads, ids.shape[1] + max_new_tokens)
    kwargs = {"logits_to_keep": 1} if keeps_logits(model) else {}
    out = model(
        input_ids=ids[:, start:],
        attention_mask=mask,
        position_ids=positions[:, start:],
        past_key_values=cache,
        **kwargs,
    )
    return out, state


@torch.inference_mode()
def sample_ids(
    model,
    tokenizer,
    scheme: PositionScheme,
    rows: list[list[int]],
    max_new_tokens: int | list[int],
    sampling: Sampling = GREEDY,
    prefix: SharedPrefix | None = None,
) -> list[list[int]]:
    """The generated token ids of each tokenized prompt (one completion per row: ``sampling.num_samples``
    is the caller's to expand), up to EOS (excluded), its budget or ``sampling.stop``. With ``prefix``
    (every row starts with its ids), its cache replaces recomputing it."""
    device = next(model.parameters()).device
    ids, mask, pads = padded_batch(rows, tokenizer.pad_token_id, device)
    generator = torch.Generator(device=device).manual_seed(sampling.seed)
    stop = sampling.stop
    ends = eos_ids(model, tokenizer)
    end_tensor, pad = torch.tensor(ends, device=device), tokenizer.pad_token_id
    budgets_list = _budgets(max_new_tokens, len(rows))
    budgets = torch.tensor(budgets_list, device=device)
    done = budgets <= 0
    out, state = _first_forward(model, scheme, ids, mask, pads, prefix, max(budgets_list, default=0))
    new_tokens: list[torch.Tensor] = []
    for count in range(1, max(budgets_list, default=0) + 1):
        token = _pick(out.logits[:, -1, :], sampling, generator)
        token = torch.where(done, torch.full_like(token, pad), token)
        new_tokens.append(token)
        done |= torch.isin(token, end_tensor) | (budgets <= count)
        if not stop.empty:
            done |= _stopped(tokenizer, new_tokens, ~done, stop)
        if bool(done.all()):
            break
        pos, state = scheme.step(token, state)
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        out = model(
            input_ids=token[:, None],
            attention_mask=mask,
            position_ids=pos[:, None],
            past_key_values=out.past_key_values,
        )
    if not new_tokens:
        return [[] for _ in rows]
    return trim(torch.stack(new_tokens, dim=1).tolist(), ends + [pad], budgets_list)


def sample_tokens(model, tokenizer, scheme, prompts: list[str], max_new_tokens, sampling: Sampling = GREEDY,
                  add_special_tokens=True) -> list[list[int]]:  # fmt: skip
    """`sample_ids` on prompt texts."""
    rows = encode(tokenizer, prompts, add_special_tokens)
    return sample_ids(model, tokenizer, scheme, rows, max_new_tokens, sampling)


def sample_batch(model, tokenizer, scheme, prompts: list[str], max_new_tokens, *args, **kwargs) -> list[str]:
    """`sample_tokens`, decoded (special tokens removed); the text is not cut at the stop."""
    rows = sample_tokens(model, tokenizer, scheme, prompts, max_new_tokens, *args, **kwargs)
    return tokenizer.batch_decode(rows, skip_special_tokens=True)


class StopCriteria(StoppingCriteria):
    """`generate`'s per-row stopping criterion for a task's `Stop` (one bool per row)."""

    def __init__(self, tokenizer, stop: Stop, prompt_length: int):
        self.tokenizer, self.stop, self.prompt_length = tokenizer, stop, prompt_length

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        texts = self.tokenizer.batch_decode(input_ids[:, self.prompt_length :], skip_special_tokens=True)
        return torch.tensor([self.stop.find_end(t) is not None for t in texts], device=input_ids.device)


@torch.inference_mode()
def hf_generate_ids(
    model,
    tokenizer,
    rows: list[list[int]],
    max_new_tokens: int | list[int],
    sampling: Sampling = GREEDY,
    prefix: SharedPrefix | None = None,
) -> list[list[int]]:
    """The library path: `model.generate` with ordinary positions (any HF causal LM), one completion
    per row, torch's global generator seeded with ``sampling.seed``; with ``prefix``, `generate` starts
    from its cache copied into every row of a `StaticCache` (transformers' prefix-cache reuse; static, so
    that decoding writes in place rather than re-copying the cache at every token)."""
    budgets = _budgets(max_new_tokens, len(rows))
    stop = sampling.stop
    device = next(model.parameters()).device
    ids, mask, pads = padded_batch(rows, tokenizer.pad_token_id, device)
    prompt_length = ids.shape[1]
    criteria = StoppingCriteriaList([StopCriteria(tokenizer, stop, prompt_length)] if not stop.empty else [])
    sampled = not sampling.greedy
    ends = eos_ids(model, tokenizer)
    torch.manual_seed(sampling.seed)
    out = model.generate(
        input_ids=ids,
        attention_mask=mask,
        past_key_values=prefix.static(model.config, pads, prompt_length + max(budgets)) if prefix else None,
        max_new_tokens=max(budgets),
        do_sample=sampled,
        temperature=sampling.temperature if sampled else None,
        top_p=sampling.top_p if sampled else None,
        top_k=None,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=ends,
        stopping_criteria=criteria,
    )
    return trim(out[:, prompt_length:].tolist(), ends + [tokenizer.pad_token_id], budgets)


def hf_generate_tokens(model, tokenizer, prompts: list[str], max_new_tokens, sampling: Sampling = GREEDY,
                       add_special_tokens=True) -> list[list[int]]:  # fmt: skip
    """`hf_generate_ids` on prompt texts."""
    rows = encode(tokenizer, prompts, add_special_tokens)
    return hf_generate_ids(model, tokenizer, rows, max_new_tokens, sampling)


def hf_generate_batch(model, tokenizer, prompts: list[str], max_new_tokens, *args, **kwargs) -> list[str]:
    """`hf_generate_tokens`, decoded (special tokens removed); the text is not cut at the stop."""
    rows = hf_generate_tokens(model, tokenizer, prompts, max_new_tokens, *args, **kwargs)
    return tokenizer.batch_decode(rows, skip_special_tokens=True)
