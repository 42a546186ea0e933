"""M0 for the embedded word-problem task: a small Llama with a BPE tokenizer, pretrained here on text.

The pretraining text is documents of consecutive ``Q:/A:`` blocks of solved easy problems (few
steps, small numbers), with the loss on every token, as a base LM reads web text. So M0 behaves like a
pretrained base model under a few-shot prompt: it answers in the blocks' format, and after its answer it
goes on to write the next ``Q:`` block, which the task's stop cuts. It has never seen a problem as
long, or numbers as large, as the ones STaR trains and tests on. Cached by a hash of what decides it.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

from selftaught.config import Config
from selftaught.models.bpe import train_bpe_tokenizer
from selftaught.models.embedded import build_tiny_llama
from selftaught.models.positions import SequentialPositions
from selftaught.tasks.fewshot import render_few_shot
from selftaught.training.base_model import train_and_cache
from selftaught.training.sft import encode_pairs

CACHE_VERSION = 1
MAX_POSITIONS = 1024  # few-shot prompt (~370 tokens) + the longest rationale, with room to spare
BLOCKS_PER_DOCUMENT = (3, 6)


def text_base_key(config: Config) -> str:
    w = config.task.word_problems
    fingerprint = {
        "base": {k: v for k, v in config.to_dict()["model"]["base"].items() if k != "cache_dir"},
        "pretrain": [w.pretrain_steps, w.pretrain_max_number, w.vocab_size],
        "seed": config.seed,
        "version": CACHE_VERSION,
    }
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:16]


def pretraining_documents(config: Config, task) -> list[str]:
    """Enough documents for ``model.base.steps`` batches; no test or training question among them."""
    from selftaught.tasks.word_problems import make_problem

    w, c = config.task.word_problems, config.model.base
    rng = random.Random(f"pretrain-{config.seed}")
    taken = {ex.question for ex in task.load("train") + task.load("test")}
    documents = []
    for _ in range(c.steps * c.batch_size):
        blocks = []
        while len(blocks) < rng.randint(*BLOCKS_PER_DOCUMENT):
            problem = make_problem(rng, rng.choice(w.pretrain_steps), w.pretrain_max_number)
            if problem.question not in taken:
                blocks.append((problem.question, problem.solution))
        documents.append(render_few_shot(blocks))
    return documents


def pretrain_text_model(config: Config, task, path: Path, reporter) -> None:
    """Pretrain M0 for ``task`` (a `WordProblemTask`) and save it at ``path``."""
    c = config.model.base
    documents = pretraining_documents(config, task)
    tokenizer = train_bpe_tokenizer(documents, config.task.word_problems.vocab_size)
    model = build_tiny_llama(tokenizer, c.num_layers, c.hidden_size, c.num_heads, MAX_POSITIONS, config.seed)
    # an empty prompt: the loss is on every token of the document, as in pretraining
    features = encode_pairs(tokenizer, SequentialPositions(), [("", doc) for doc in documents], MAX_POSITIONS)
    label = "base model M0: pretrain"
    train_and_cache(model, tokenizer, features, config, path, "sequential", reporter, label, MAX_POSITIONS)
