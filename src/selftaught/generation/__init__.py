"""Generators turn prompts into completions; the loop does not care which one runs.

``sampler`` is selftaught's own KV-cache loop (needed for digit positions, fine for any HF model);
``hf`` is `transformers`' `generate`, kept beside it as the library path.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from selftaught.generation.sampler import hf_generate_batch, sample_batch
from selftaught.models.positions import DigitPositions

BACKENDS = ("auto", "sampler", "hf")


class Generator:
    def __init__(self, model, tokenizer, scheme, backend: str = "auto", batch_size: int = 256):
        if backend == "auto":
            backend = "sampler" if isinstance(scheme, DigitPositions) else "hf"
        if backend == "hf" and isinstance(scheme, DigitPositions):
            raise ValueError("generation.backend=hf cannot pass digit positions; use 'sampler'")
        if backend not in BACKENDS:
            raise ValueError(f"unknown generation backend {backend!r}; choose one of {BACKENDS}")
        self.model, self.tokenizer, self.scheme = model, tokenizer, scheme
        self.backend, self.batch_size = backend, batch_size

    def complete(
        self,
        prompts: list[str],
        max_new_tokens: list[int],
        num_samples: int = 1,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int = 0,
        on_batch: Callable[[int], None] | None = None,
    ) -> list[list[str]]:
        """``num_samples`` completions per prompt, in prompt order.

        Jobs are sorted by token budget and prompt length so that each batch pads little and stops
        early; each batch gets its own seed, so results do not depend on what ran before.
        """
        jobs = [(i, s) for i in range(len(prompts)) for s in range(num_samples)]
        jobs.sort(key=lambda job: (max_new_tokens[job[0]], len(prompts[job[0]])))
        results: list[list[str]] = [[""] * num_samples for _ in prompts]
        self.model.eval()
        for start in range(0, len(jobs), self.batch_size):
            batch = jobs[start : start + self.batch_size]
            texts = [prompts[i] for i, _ in batch]
            budgets = [max_new_tokens[i] for i, _ in batch]
            if self.backend == "sampler":
                outs = sample_batch(
                    self.model, self.tokenizer, self.scheme, texts, budgets, temperature, top_p, seed + start
                )
            else:
                torch.manual_seed(seed + start)
                outs = hf_generate_batch(self.model, self.tokenizer, texts, budgets, temperature, top_p)
            for (i, s), text in zip(batch, outs):
                results[i][s] = text
            if on_batch:
                on_batch(len(batch))
        return results
