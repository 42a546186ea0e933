"""Batched sampling with a KV cache that passes the model's own position ids.

`transformers`' `generate` derives position ids from the attention mask, so it cannot drive a model
trained with digit-index positions. This loop calls the same `model.forward` with a `DynamicCache`
and asks a position scheme for each new token's id. With sequential positions it reproduces
`generate` token for token under greedy decoding (tested), so it is a drop-in for any HF model.
"""

from __future__ import annotations

import torch
from transformers import DynamicCache

from selftaught.models.positions import DigitPositions


def _pick(logits: torch.Tensor, temperature: float, top_p: float, generator) -> torch.Tensor:
    if temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        drop = sorted_probs.cumsum(-1) - sorted_probs > top_p  # keep the first token always
        sorted_probs = sorted_probs.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@torch.inference_mode()
def sample_batch(
    model,
    tokenizer,
    scheme,
    prompts: list[str],
    max_new_tokens: int | list[int],
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int = 0,
    add_special_tokens: bool = True,
) -> list[str]:
    """Complete each prompt once; returns the completions (special tokens removed).

    ``max_new_tokens`` may be one budget or one per prompt (a row stops at its own budget).
    """
    device = next(model.parameters()).device
    enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=add_special_tokens).to(device)
    input_ids, mask = enc["input_ids"], enc["attention_mask"]
    digit = isinstance(scheme, DigitPositions)
    if digit:
        positions, state = scheme.full(input_ids)
    else:
        positions, state = scheme.full_from_mask(mask)
    generator = torch.Generator(device=device).manual_seed(seed)
    cache = DynamicCache()
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    if isinstance(max_new_tokens, int):
        max_new_tokens = [max_new_tokens] * len(prompts)
    budgets = torch.tensor(max_new_tokens, device=device)
    done = budgets <= 0
    out = model(input_ids=input_ids, attention_mask=mask, position_ids=positions, past_key_values=cache)
    new_tokens = []
    for count in range(1, max(max_new_tokens, default=0) + 1):
        token = _pick(out.logits[:, -1, :], temperature, top_p, generator)
        token = torch.where(done, torch.full_like(token, pad), token)
        new_tokens.append(token)
        done |= (token == eos) | (budgets <= count)
        if bool(done.all()):
            break
        if digit:
            pos, state = scheme.step(token, state)
        else:
            pos, state = scheme.next(state)
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        out = model(
            input_ids=token[:, None],
            attention_mask=mask,
            position_ids=pos[:, None],
            past_key_values=out.past_key_values,
        )
    if not new_tokens:
        return [""] * len(prompts)
    generated = torch.stack(new_tokens, dim=1).tolist()
    texts = []
    for row in generated:
        if eos in row:
            row = row[: row.index(eos)]
        texts.append(tokenizer.decode(row, skip_special_tokens=True))
    return texts


@torch.inference_mode()
def hf_generate_batch(
    model,
    tokenizer,
    prompts: list[str],
    max_new_tokens: int | list[int],
    temperature: float = 0.0,
    top_p: float = 1.0,
    add_special_tokens: bool = True,
) -> list[str]:
    """The library path: `model.generate` with ordinary positions (any HF causal LM)."""
    budgets = [max_new_tokens] * len(prompts) if isinstance(max_new_tokens, int) else list(max_new_tokens)
    device = next(model.parameters()).device
    enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=add_special_tokens).to(device)
    sampling = temperature > 0
    out = model.generate(
        **enc,
        max_new_tokens=max(budgets),
        do_sample=sampling,
        temperature=temperature if sampling else None,
        top_p=top_p if sampling else None,
        top_k=None,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    new = out[:, enc["input_ids"].shape[1] :].tolist()
    return tokenizer.batch_decode([row[:budget] for row, budget in zip(new, budgets)], skip_special_tokens=True)
