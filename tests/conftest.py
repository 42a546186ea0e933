"""Shared fixtures: tiny random models built locally (no hub), small configs."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from selftaught.config import Config, config_from_dict
from selftaught.models.embedded import build_char_tokenizer


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)


@pytest.fixture
def char_tokenizer():
    return build_char_tokenizer()


@pytest.fixture
def tiny_llama(char_tokenizer):
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(char_tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=char_tokenizer.pad_token_id,
        bos_token_id=char_tokenizer.bos_token_id,
        eos_token_id=char_tokenizer.eos_token_id,
    )
    return LlamaForCausalLM(config).eval()


def tiny_run_config(tmp_path, **sections) -> Config:
    """A seconds-long arithmetic run: M0 on 1-2 digits, questions of 1-3 digits."""
    data = {
        "seed": 0,
        "task": {
            "arithmetic": {
                "train_digits": [1, 2, 3],
                "test_digits": [1, 2, 3],
                "train_per_digit": 12,
                "test_per_digit": 8,
            }
        },
        "model": {
            "base": {
                "num_layers": 3,
                "hidden_size": 64,
                "num_heads": 4,
                "max_digits": 2,
                "steps": 600,
                "batch_size": 32,
                "learning_rate": 2e-3,
                "cache_dir": str(tmp_path / "cache"),
            }
        },
        "loop": {"iterations": 1, "patience": 0},
        "train": {"first_steps": 8, "batch_size": 16},
    }
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    return config_from_dict(data)
