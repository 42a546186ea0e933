"""Tiny random Hugging Face models and tokenizers, built and saved locally (no hub).

The tokenizer is a byte-level BPE trained on the fixture text, so any text encodes; the chat variant
carries a ChatML template like Qwen's instruct models. ``memorize`` fine-tunes the random model on a few
(prompt, completion) pairs so that greedy generation reproduces them: the loop then has right answers
to keep, which a random model would never give.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

from selftaught.config import TrainConfig

FAST = TrainConfig(batch_size=8, learning_rate=3e-3, save_every_steps=0)  # memorize a few pairs quickly
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_bpe_tokenizer(corpus: list[str], chat: bool = False, vocab_size: int = 512) -> PreTrainedTokenizerFast:
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>"]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    core.train_from_iterator(corpus, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, eos_token="<|im_end|>" if chat else "<|endoftext|>", pad_token="<pad>"
    )
    if chat:
        tokenizer.chat_template = CHATML
    return tokenizer


def build_model(tokenizer, arch: str = "llama", seed: int = 0, max_positions: int = 1024):
    torch.manual_seed(seed)
    common = dict(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_positions,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    if arch == "qwen2":
        return Qwen2ForCausalLM(Qwen2Config(**common, tie_word_embeddings=True))
    return LlamaForCausalLM(LlamaConfig(**common))


def memorize(model, tokenizer, pairs: list[tuple[str, str]], steps: int, chat: bool, out_dir: Path) -> None:
    from selftaught.models import render_prompt
    from selftaught.models.positions import SequentialPositions
    from selftaught.training.sft import SftJob, encode_pairs, train_sft

    rendered = [(render_prompt(tokenizer, chat, p), c) for p, c in pairs]
    features = encode_pairs(tokenizer, SequentialPositions(), rendered, add_special_tokens=not chat)
    train_sft(model, features, tokenizer.pad_token_id, SftJob(out_dir / ".memorize", steps, FAST, seed=0))


def save_tiny(path: Path, corpus: list[str], pairs: list[tuple[str, str]], arch="llama", chat=False, steps=150):
    """Build, memorize ``pairs`` and save a model folder loadable with ``from_pretrained(path)``."""
    tokenizer = build_bpe_tokenizer(corpus, chat)
    model = build_model(tokenizer, arch)
    if pairs:
        memorize(model, tokenizer, pairs, steps, chat, path.parent)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def babble_pairs(prompts: list[str], answers: list[str], blocks: list[str], next_blocks: int = 2):
    """(prompt, continuation) pairs in which each answer runs on into made-up next ``Q:``/``A:`` blocks,
    joined by blank lines, with no end-of-sequence token: what a pretrained base LM has seen."""
    pairs = []
    for k, (prompt, answer) in enumerate(zip(prompts, answers)):
        following = [blocks[(k + j + 1) % len(blocks)] for j in range(next_blocks)]
        pairs.append((prompt, " " + answer + "".join("\n\n" + block for block in following)))
    return pairs


def memorize_text(model, tokenizer, pairs: list[tuple[str, str]], steps: int, out_dir: Path) -> None:
    """Fine-tune on prompt + continuation with the loss on the continuation and *no* EOS appended."""
    from selftaught.training.sft import IGNORE, SftJob, train_sft

    features = []
    for prompt, continuation in pairs:
        head = tokenizer(prompt)["input_ids"]
        tail = tokenizer(continuation, add_special_tokens=False)["input_ids"]
        features.append({"input_ids": head + tail, "labels": [IGNORE] * len(head) + tail})
    train_sft(model, features, tokenizer.pad_token_id, SftJob(out_dir / ".memorize", steps, FAST, seed=0))


def save_babbler(
    path: Path, corpus: list[str], pairs: list[tuple[str, str]], steps: int = 150, max_positions=1024, vocab_size=512
):
    """A tiny base-model stand-in that answers, then keeps writing the next ``Q:`` block until its budget."""
    tokenizer = build_bpe_tokenizer(corpus, vocab_size=vocab_size)
    model = build_model(tokenizer, max_positions=max_positions)
    memorize_text(model, tokenizer, pairs, steps, path.parent)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
