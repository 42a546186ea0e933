"""A stand-in for the `vllm` module on CPU: `LLM.generate` runs the HF model greedily and applies
``SamplingParams.stop`` the way vLLM documents it (generation ends when a stop string appears in the
detokenized text, and the returned text excludes it). Tests put it in ``sys.modules["vllm"]``."""

from __future__ import annotations

import types
from dataclasses import dataclass, field

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


@dataclass
class SamplingParams:
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 16
    seed: int | None = None
    stop: list[str] | None = None


@dataclass
class CompletionOutput:
    text: str
    token_ids: list[int] = field(default_factory=list)
    finish_reason: str = "stop"  # "length" when max_tokens ended it, as vLLM reports


@dataclass
class RequestOutput:
    outputs: list[CompletionOutput]


class LLM:
    instances: list[LLM] = []

    def __init__(self, model: str, **kwargs):
        self.kwargs = kwargs
        self.model = AutoModelForCausalLM.from_pretrained(model).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(model)
        self.calls: list[list[SamplingParams]] = []
        LLM.instances.append(self)

    def _one(self, prompt: str, params: SamplingParams) -> CompletionOutput:
        ids = self.tokenizer(prompt, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            out = self.model.generate(
                ids, max_new_tokens=params.max_tokens, do_sample=False, eos_token_id=self.tokenizer.eos_token_id
            )
        new = [t for t in out[0, ids.shape[1] :].tolist() if t != self.tokenizer.eos_token_id]
        for k in range(1, len(new) + 1):  # vLLM checks stops as each token is detokenized
            text = self.tokenizer.decode(new[:k], skip_special_tokens=True)
            hits = [text.find(s) for s in params.stop or [] if s in text]
            if hits:
                return CompletionOutput(text[: min(hits)], new[:k])
        reason = "length" if len(new) >= params.max_tokens else "stop"  # EOS (dropped from new) ends it early
        return CompletionOutput(self.tokenizer.decode(new, skip_special_tokens=True), new, reason)

    def generate(self, prompts, params, use_tqdm=True):
        self.calls.append(list(params))
        return [RequestOutput([self._one(p, sp) for _ in range(sp.n)]) for p, sp in zip(prompts, params)]


def module() -> types.ModuleType:
    fake = types.ModuleType("vllm")
    fake.LLM, fake.SamplingParams = LLM, SamplingParams
    return fake
