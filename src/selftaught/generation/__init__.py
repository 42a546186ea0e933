"""Generators turn task prompts into completions; the loop does not care which one runs.

Every backend stops a completion where the task's `Stop` says it ends and returns it cut there
(``generation.stop_at_answer``) as a `Completion` that says whether the token budget cut it instead
(``truncated``), and counts the tokens it generated (``tokens_generated``).

* ``sampler``: selftaught's own KV-cache loop (needed for digit positions, fine for any HF model);
* ``hf``: `transformers`' `generate`, the library path;
* ``vllm``: vLLM on a GPU (optional extra ``selftaught[vllm]``, imported only when chosen).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import partial

from selftaught.generation import argmax_screen, shared_attention
from selftaught.generation.prefix import PrefixStore
from selftaught.generation.sampler import encode, hf_generate_ids, sample_ids
from selftaught.generation.sampling import GREEDY, Sampling
from selftaught.models import LoadedModel, load_for_generation, load_tokenizer, render_prompt, use_chat
from selftaught.samples import Completion
from selftaught.tasks.stops import Stop

BACKENDS = ("auto", "sampler", "hf", "vllm")


def resolve_backend(backend: str, loaded: LoadedModel) -> str:
    digit = not loaded.scheme.ordinary  # generate derives positions from the mask: it cannot pass these
    if backend == "auto":
        return "sampler" if digit else "hf"
    if backend in ("hf", "vllm") and digit:
        raise ValueError(f"generation.backend={backend} cannot pass digit positions; use 'sampler' or 'auto'")
    if backend not in BACKENDS:
        raise ValueError(f"unknown generation backend {backend!r}; choose one of {BACKENDS}")
    return backend


def flat_output_layer(model) -> None:
    """Hand the output layer its input as one contiguous 2-D matrix. With ``logits_to_keep``, models
    compute the logits of ``hidden[:, -1:, :]``, a strided 3-D view, which `F.linear` sends through `bmm`
    with the weight expanded per row; for bf16 weights on CPU that copies the whole weight: 3.8 s per
    batch of 8 rows (0.75 s for the batch-1 prefix) for Gemma 3's 640 x 262,144 output layer, most of a
    short generation. As a matrix it is one `mm`. The logits come back in the shape the model expects."""
    layer = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if layer is None or getattr(layer, "_selftaught_flat", False):
        return
    shapes = []

    def flatten(module, args):
        shapes.append(args[0].shape[:-1])
        return (args[0].reshape(-1, args[0].shape[-1]).contiguous(), *args[1:])

    def restore(module, args, output):
        return output.view(*shapes.pop(), output.shape[-1])

    layer.register_forward_pre_hook(flatten)
    layer.register_forward_hook(restore)
    layer._selftaught_flat = True


def as_completion(text: str, tokens: int, budget: int, stop: Stop) -> Completion:
    """A generated row's decoded text (``tokens`` long, EOS trimmed off) cut at ``stop``, marked truncated
    when the budget ended it: a full-length row ran out of budget unless its text reached the stop."""
    return Completion(stop.cut(text), truncated=tokens >= budget and stop.find_end(text) is None)


class Generator:
    """Batched completion with the in-process model (``sampler`` or ``hf`` backend)."""

    def __init__(
        self,
        loaded: LoadedModel,
        backend: str = "auto",
        batch_size: int = 256,
        prefix_cache: bool = True,
        output_screen: bool = True,
    ):
        flat_output_layer(loaded.model)
        self.loaded, self.batch_size, self.output_screen = loaded, batch_size, output_screen
        self.backend = resolve_backend(backend, loaded)
        self.tokens_generated = 0  # over every call, for throughput reports
        # digit positions depend on each row's content, so only ordinary positions share a prefix cache
        self.prefixes = PrefixStore(prefix_cache and loaded.scheme.ordinary)
        if self.prefixes.enabled:  # decoding then reads the shared prefix's cache once per step, not once per row
            shared_attention.enable(loaded.model)

    def complete(
        self,
        prompts: list[str],
        max_new_tokens: list[int],
        sampling: Sampling = GREEDY,
        on_batch: Callable[[int], None] | None = None,
    ) -> list[list[Completion]]:
        """``sampling.num_samples`` completions per task prompt, in prompt order, each cut at ``sampling.stop``;
        one that reached its token budget before EOS or the stop is ``truncated``.

        Jobs are sorted by token budget and prompt length so that each batch pads little and stops
        early; each batch gets its own seed, so results do not depend on what ran before. The prompts'
        shared prefix (the few-shot examples) is encoded once and its cache reused by every batch.
        """
        lm = self.loaded
        sampling = replace(sampling, stop=sampling.stop.for_chat(lm.chat))
        tokenized = encode(lm.tokenizer, [lm.render(p) for p in prompts], lm.add_special_tokens)
        prefix = self.prefixes.get(lm.model, lm.scheme, tokenized) if prompts else None
        jobs = [(i, s) for i in range(len(prompts)) for s in range(sampling.num_samples)]
        jobs.sort(key=lambda job: (max_new_tokens[job[0]], len(tokenized[job[0]])))
        results: list[list[Completion]] = [[Completion("")] * sampling.num_samples for _ in prompts]
        lm.model.eval()
        for start in range(0, len(jobs), self.batch_size):
            batch = jobs[start : start + self.batch_size]
            inputs = [tokenized[i] for i, _ in batch]
            budgets = [max_new_tokens[i] for i, _ in batch]
            batch_sampling = sampling.reseeded(start)  # each batch its own seed
            with argmax_screen.screened(lm.model, enabled=sampling.greedy and self.output_screen):
                if self.backend == "sampler":
                    rows = sample_ids(lm.model, lm.tokenizer, lm.scheme, inputs, budgets, batch_sampling, prefix)
                else:
                    rows = hf_generate_ids(lm.model, lm.tokenizer, inputs, budgets, batch_sampling, prefix)
            self.tokens_generated += sum(len(row) for row in rows)
            texts = lm.tokenizer.batch_decode(rows, skip_special_tokens=True)
            for (i, s), row, budget, text in zip(batch, rows, budgets, texts):
                results[i][s] = as_completion(text, len(row), budget, sampling.stop)
            if on_batch:
                on_batch(len(batch))
        return results


def make_generator(model_path, config):
    """The configured generation backend (``config.generation``) for the model at ``model_path``."""
    g = config.generation
    if g.backend == "vllm":
        from selftaught.generation.vllm import VLLMGenerator

        tokenizer = load_tokenizer(model_path, config.model)  # chat decision made as for training
        chat = use_chat(tokenizer, config.model, model_path)
        render = partial(render_prompt, tokenizer, chat, system=config.model.system_prompt)
        tensor_parallel = max(1, int(config.distributed.gpus_per_worker))  # one engine over a worker's GPUs
        return VLLMGenerator(model_path, config.model, render, config.seed, chat, tensor_parallel)
    loaded = load_for_generation(model_path, config.model, g.precision)
    return Generator(loaded, g.backend, g.batch_size, g.prefix_cache, g.output_screen)
