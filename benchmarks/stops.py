"""Stops: generated tokens per question and generation time, before vs after, on a base-model stand-in.

The stand-in is a tiny Llama (BPE tokenizer trained here) fine-tuned on GSM8K-format text in which
each solution runs on into the next ``Q:``/``A:`` blocks with no end-of-text, as a pretrained LM has
seen; under the STaR few-shot prompt it answers, then keeps writing made-up questions until its budget
runs out. With ``../shared/data/gsm8k`` present it uses the STaR release's few-shot examples and the
first questions of the GSM8K test set; otherwise the tests' small fixture rows. The stand-in memorizes
its 24 sequences within minutes only with a short prompt, so the default prompt holds one few-shot
example (``--shots 6`` for the whole STaR prompt; it then learns too little in 100-200 steps to answer).
Each backend (own sampler, `generate`) runs the same prompts, budget and batch with stops off
(``generation.stop_at_answer=false``: the old behaviour) and on, in one process, side by side.

Run:  .venv/bin/python benchmarks/stops.py [--questions 24] [--budget 200]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from selftaught.config import config_from_dict  # noqa: E402
from selftaught.generation import Generator  # noqa: E402
from selftaught.generation.sampling import Sampling  # noqa: E402
from selftaught.models import load_model  # noqa: E402
from selftaught.tasks import make_task  # noqa: E402
from selftaught.tasks.stops import NO_STOP  # noqa: E402
from tests.tiny_hf import babble_pairs, save_babbler  # noqa: E402

SHARED = REPO.parent / "shared" / "data" / "gsm8k"


def data_files(root: Path, questions: int, shots: int) -> tuple[Path, Path, str]:
    """(test file, few-shot file with the first ``shots`` examples, source) with ``questions`` rows."""
    if (SHARED / "test.jsonl").is_file():
        lines = (SHARED / "test.jsonl").read_text().splitlines()[:questions]
        (root / "test.jsonl").write_text("\n".join(lines) + "\n")
        blocks = (SHARED / "prompts.txt").read_text().strip().split("\n\n")[:shots]
        (root / "prompts.txt").write_text("\n\n".join(blocks) + "\n")
        return root / "test.jsonl", root / "prompts.txt", f"GSM8K test + {shots} STaR few-shot example(s) (../shared)"
    from tests.test_real_models import write_gsm

    write_gsm(root)
    return root / "train.jsonl", root / "prompts.txt", "test fixture rows (../shared absent)"


def build(root: Path, questions: int, budget: int, steps: int, shots: int):
    test, few_shot, source = data_files(root, questions, shots)
    data = {"test": str(test), "train": str(test), "few_shot": str(few_shot), "max_new_tokens": budget}
    config = config_from_dict({"task": {"name": "gsm8k", "data": data}, "model": {"name_or_path": str(root / "m")}})
    task = make_task(config)
    examples = task.load("test")
    solutions = [dict(ex.meta)["solution"] for ex in examples]
    blocks = [f"Q: {ex.question}\nA: {sol}" for ex, sol in zip(examples, solutions)]
    prompts = [task.prompt(ex) for ex in examples]
    pairs = babble_pairs(prompts, solutions, blocks)
    corpus = [few_shot.read_text()] + [p + c for p, c in pairs]
    start = time.perf_counter()
    save_babbler(root / "m", corpus, pairs, steps=steps, max_positions=4096, vocab_size=2048)
    return config, task, examples, prompts, source, time.perf_counter() - start


def measure(generator: Generator, task, examples, prompts, budget: int, stop) -> dict:
    generator.tokens_generated = 0
    start = time.perf_counter()
    texts = [t[0] for t in generator.complete(prompts, [budget] * len(prompts), Sampling(stop=stop))]
    seconds = time.perf_counter() - start
    correct = sum(task.check(task.extract_answer(t, ex), ex) for t, ex in zip(texts, examples))
    return {
        "seconds": round(seconds, 2),
        "tokens_per_question": round(generator.tokens_generated / len(prompts), 1),
        "chars_per_kept_text": round(sum(map(len, texts)) / len(texts), 1),
        "texts_with_next_question": sum("\nQ:" in t for t in texts),
        "correct": correct,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=24)
    parser.add_argument("--budget", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=200, help="stand-in fine-tuning steps")
    parser.add_argument("--shots", type=int, default=1, help="few-shot examples in the prompt (more: slower build)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "stops.json"))
    args = parser.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        config, task, examples, prompts, source, build_s = build(
            Path(tmp), args.questions, args.budget, args.steps, args.shots
        )
        lm = load_model(Path(tmp) / "m", config.model)
        prompt_tokens = sum(len(lm.tokenizer(p)["input_ids"]) for p in prompts) / len(prompts)
        rows = []
        for backend in ("sampler", "hf"):
            generator = Generator(lm, backend, args.batch_size)
            before = measure(generator, task, examples, prompts, args.budget, NO_STOP)
            after = measure(generator, task, examples, prompts, args.budget, task.stop())
            rows.append({"backend": backend, "before": before, "after": after})
    gold_chars = sum(len(dict(ex.meta)["solution"]) for ex in examples) / len(examples)
    result = {
        "data": source,
        "questions": len(prompts),
        "budget_tokens": args.budget,
        "batch_size": args.batch_size,
        "prompt_tokens_mean": round(prompt_tokens, 1),
        "gold_solution_chars_mean": round(gold_chars, 1),
        "stand_in_build_seconds": round(build_s, 1),
        "rows": rows,
    }
    header = f"{'backend':8} {'stops':6} {'tok/q':>7} {'seconds':>8} {'chars/text':>10} {'next Q:':>8} {'correct':>8}"
    print(f"{source}; {len(prompts)} questions, prompt {prompt_tokens:.0f} tokens, budget {args.budget}")
    print(header)
    for row in rows:
        for name in ("before", "after"):
            m = row[name]
            print(
                f"{row['backend']:8} {'off' if name == 'before' else 'on':6} {m['tokens_per_question']:>7} "
                f"{m['seconds']:>8} {m['chars_per_kept_text']:>10} {m['texts_with_next_question']:>8} "
                f"{m['correct']:>8}"
            )
        ratio = row["before"]["seconds"] / max(row["after"]["seconds"], 1e-9)
        print(f"{row['backend']:8} speed-up x{ratio:.2f}")
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
