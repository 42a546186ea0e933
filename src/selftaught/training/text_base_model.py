"""M0 for the embedded word-problem task: a small Llama with a BPE tokenizer, pretrained here on text.

The pretraining text is documents of consecutive ``Q:/A:`` blocks of solved problems (1-3 steps by
default; with ``pretrain_sloppy`` many long solutions stop one step short), read as a base LM reads web
text: documents joined by EOS into one stream, cut into rows of ``ROW_TOKENS``, the loss on every token.
Rows of one length need neither padding nor a per-example mask, so attention takes its plain causal
path: 1.48x the real tokens/s of packed documents with a block mask on this 2-core CPU (11.2k vs 7.6k,
benchmarks/pretrain_rows.py).

So M0 behaves like a pretrained base model under a few-shot prompt: it answers in the blocks' format,
and after its answer it goes on to write the next ``Q:`` block, which the task's stop cuts. By default it
has never seen a problem as long as the hardest ones STaR trains and tests on; recipes/word_problems.yaml
instead shows it every length but the habit of stopping short. Cached by a hash of what decides it.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
from collections.abc import Iterator
from pathlib import Path

from selftaught.config import Config
from selftaught.models.bpe import train_bpe_tokenizer
from selftaught.models.embedded import build_tiny_llama
from selftaught.tasks.fewshot import render_few_shot
from selftaught.training.base_model import train_and_cache

CACHE_VERSION = 2
MAX_POSITIONS = 1024  # few-shot prompt (~300 tokens) + the longest rationale, with room to spare
ROW_TOKENS = 512  # longer than a few-shot prompt and its answer, so M0 learns to read one
BLOCKS_PER_DOCUMENT = (3, 6)
DOCUMENTS_PER_ROW = 2  # a document of 1-3 step problems is ~330 tokens: two per row leave a margin


def text_base_key(config: Config) -> str:
    w = config.task.word_problems
    fingerprint = {
        "base": {k: v for k, v in config.to_dict()["model"]["base"].items() if k != "cache_dir"},
        "pretrain": [w.pretrain_steps, w.pretrain_max_number, w.max_value, w.vocab_size, w.pretrain_sloppy],
        # pretraining leaves out every training and test question, so those settings shape its text too
        "questions": [w.train_steps, w.test_steps, w.train_per_step, w.test_per_step, w.max_number],
        "seed": config.seed,
        "version": CACHE_VERSION,
    }
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:16]


def pretraining_documents(config: Config, task) -> list[str]:
    """Two documents per row of ``model.base.steps`` batches (the tokenizer learns from these); no test or
    training question among them."""
    return list(itertools.islice(document_stream(config, task), _first_documents(config)))


def _first_documents(config: Config) -> int:
    return config.model.base.steps * config.model.base.batch_size * DOCUMENTS_PER_ROW


def document_stream(config: Config, task) -> Iterator[str]:
    """Documents of ``Q:/A:`` blocks of solved easy problems, without end (one seeded sequence)."""
    from selftaught.tasks.word_problems import make_problem

    w, c = config.task.word_problems, config.model.base
    rng = random.Random(f"pretrain-{config.seed}")
    taken = {ex.question for ex in task.load("train") + task.load("test")}
    while True:
        blocks = []
        while len(blocks) < rng.randint(*BLOCKS_PER_DOCUMENT):
            problem = make_problem(rng, rng.choice(w.pretrain_steps), w.pretrain_max_number, w.max_value)
            if problem.question in taken:
                continue
            # some questions carry their answer in the hint's format, as worked examples on the web
            # sometimes do: that is what lets M0 use a hint when STaR rationalizes
            hinted = rng.random() < c.hint_fraction
            question = f"{problem.question} ({problem.answer})" if hinted else problem.question
            solution = problem.solution
            # a writer who states the answer reaches it, so a hint always gets a whole solution
            if w.pretrain_sloppy and not hinted and problem.steps >= 3 and rng.random() < w.pretrain_sloppy:
                solution = forget_last_step(solution)
            blocks.append((question, solution))
        yield render_few_shot(blocks)


def forget_last_step(solution: str) -> str:
    """The solution without its last step, answering the value before it (a sloppy worked solution).

    >>> forget_last_step("5+3 = <<5+3=8>>8\\n8-2 = <<8-2=6>>6\\n#### 6")
    '5+3 = <<5+3=8>>8\\n#### 8'
    """
    *lines, _answer = solution.split("\n")
    kept = lines[:-1]
    return "\n".join(kept + [f"#### {kept[-1].rpartition('>>')[2]}"])


def pretrain_text_model(config: Config, task, path: Path, reporter) -> None:
    """Pretrain M0 for ``task`` (a `WordProblemTask`) and save it at ``path``."""
    c = config.model.base
    stream = document_stream(config, task)
    documents = list(itertools.islice(stream, _first_documents(config)))
    tokenizer = train_bpe_tokenizer(documents, config.task.word_problems.vocab_size)
    model = build_tiny_llama(tokenizer, c.num_layers, c.hidden_size, c.num_heads, MAX_POSITIONS, config.seed)
    rows = stream_rows(tokenizer, documents, ROW_TOKENS)
    while len(rows) < c.steps * c.batch_size:  # short documents (1-step problems): read on
        documents += itertools.islice(stream, len(documents) // 2 + 1)
        rows = stream_rows(tokenizer, documents, ROW_TOKENS)
    features = [{"input_ids": row, "labels": row} for row in rows[: c.steps * c.batch_size]]
    label = "base model M0: pretrain"
    train_and_cache(model, tokenizer, features, config, path, "sequential", reporter, label, packing=False)


def stream_rows(tokenizer, documents: list[str], row_tokens: int) -> list[list[int]]:
    """The documents' tokens, each document followed by EOS, cut into rows of ``row_tokens`` (rest dropped).

    A row may start or end inside a document, as in any LM pretraining.
    """
    stream: list[int] = []
    for ids in tokenizer(documents)["input_ids"]:
        stream += ids + [tokenizer.eos_token_id]
    return [stream[k : k + row_tokens] for k in range(0, len(stream) - row_tokens + 1, row_tokens)]
