"""Loading any causal LM (the embedded default or a Hugging Face model) with its position scheme."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from selftaught.models.embedded import load_meta, save_meta
from selftaught.models.positions import make_scheme


def load_model(path: str | Path):
    """(model, tokenizer, position scheme) from a local folder or hub id."""
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
    model.eval()
    scheme = make_scheme(load_meta(path)["positions"] if Path(path).is_dir() else "sequential", tokenizer)
    return model, tokenizer, scheme


def save_model(model, tokenizer, scheme_name: str, path: str | Path) -> None:
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    save_meta(path, scheme_name)


def scheme_name(scheme) -> str:
    return "digit" if type(scheme).__name__ == "DigitPositions" else "sequential"
