"""What real pretrained models write on GSM8K and CommonsenseQA, graded: the outputs to read by hand.

Gemma 3 270M (base) gets STaR's few-shot prompt (its stops cut the made-up next question); SmolLM2-135M-
Instruct gets the bare question through its chat template and answers in its own free format. Greedy,
``generation.precision=auto``, the first N test questions of ../shared/data. Each completion is written with
what the grader read from it, so every accept and every miss can be checked against the text:

    benchmarks/results/real_outputs/<model>_<task>.jsonl
      {"index", "question", "choices", "gold", "completion", "truncated", "extracted", "correct", "verified",
       "problem"}   ("truncated": the token budget cut the completion; files written before lack it: not cut)

and the counts go to benchmarks/results/grade_real.json. `--regrade` grades the saved completions again
with the current graders (no generation), printing which rows changed: after a grader fix.

Run:  .venv/bin/python benchmarks/grade_real.py --questions 100            (all four, ~30 min on 2 cores)
      .venv/bin/python benchmarks/grade_real.py --model gemma3 --task gsm8k --questions 20
      .venv/bin/python benchmarks/grade_real.py --regrade
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed_real import model_folder  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"
RESULTS = REPO / "benchmarks" / "results"
OUTPUTS = RESULTS / "real_outputs"
DATA = {
    "gsm8k": {"test": SHARED / "gsm8k" / "test.jsonl", "few_shot": SHARED / "gsm8k" / "prompts.txt"},
    "commonsenseqa": {
        "test": SHARED / "commonsenseqa" / "dev_rand_split.jsonl",
        "few_shot": SHARED / "commonsenseqa" / "prompts.txt",
    },
}
# (chat template, few-shot prompt, new-token budget per task): the base model continues STaR's prompt,
# the instruct model answers the bare question as its users would ask it
MODELS = {
    "gemma3": {"chat": "off", "few_shot": True, "budget": {"gsm8k": 256, "commonsenseqa": 128}},
    "smollm2": {"chat": "auto", "few_shot": False, "budget": {"gsm8k": 384, "commonsenseqa": 256}},
}


def make_config(model: str, task: str, path: str):
    from selftaught.config import config_from_dict

    spec = MODELS[model]
    data = {"train": str(DATA[task]["test"]), "test": str(DATA[task]["test"]), "few_shot": str(DATA[task]["few_shot"])}
    data["max_new_tokens"] = spec["budget"][task]
    return config_from_dict(
        {
            "task": {"name": task, "data": data},
            "model": {"name_or_path": path, "chat_template": spec["chat"]},
            "generation": {"batch_size": 16},
        }
    )


def graded_rows(task, examples, texts: list[str]) -> list[dict]:
    """``texts``: `Completion`s (a plain str counts as not cut by the budget)."""
    from selftaught import star

    rows = []
    for index, (example, text) in enumerate(zip(examples, texts)):
        graded = star.grade(task, example, text, False)
        choices = dict(example.meta).get("choices", ())
        rows.append(
            {
                "index": index,
                "question": example.question,
                "choices": [list(c) for c in choices],
                "gold": example.answer,
                "completion": str(text),
                "truncated": graded.truncated,
                "extracted": graded.answer,
                "correct": graded.correct,
                "verified": graded.verified,
                "problem": graded.problem,
            }
        )
    return rows


def generate(model: str, task_name: str, questions: int) -> dict:
    from selftaught.generation import make_generator
    from selftaught.generation.sampling import Sampling
    from selftaught.tasks import make_task

    path = model_folder(model)
    config = make_config(model, task_name, path)
    task = make_task(config)
    examples = task.load("test")[:questions]
    prompts = [task.prompt(ex, few_shot=MODELS[model]["few_shot"]) for ex in examples]
    generator = make_generator(path, config)
    start = time.perf_counter()
    texts = generator.complete(
        prompts, [task.max_new_tokens(ex) for ex in examples], Sampling(seed=0, stop=task.stop())
    )
    seconds = time.perf_counter() - start
    rows = graded_rows(task, examples, [t[0] for t in texts])
    out = OUTPUTS / f"{model}_{task_name}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {"seconds": round(seconds, 1), **counts(rows)}


def counts(rows: list[dict]) -> dict:
    return {
        "rows": len(rows),
        "correct": sum(r["correct"] for r in rows),
        "verified": sum(bool(r["verified"]) for r in rows),
        "no_answer": sum(r["extracted"] is None for r in rows),
    }


def regrade(model: str, task_name: str) -> dict | None:
    """Grade saved completions again with the current graders; print each row whose grade changed."""
    from selftaught.samples import Completion
    from selftaught.tasks import make_task

    out = OUTPUTS / f"{model}_{task_name}.jsonl"
    if not out.is_file():
        return None
    saved = [json.loads(line) for line in out.read_text().splitlines()]
    task = make_task(make_config(model, task_name, "unused"))
    examples = task.load("test")[: len(saved)]
    rows = graded_rows(task, examples, [Completion(r["completion"], r.get("truncated") is True) for r in saved])
    for old, new in zip(saved, rows):
        if (old["extracted"], old["correct"]) != (new["extracted"], new["correct"]):
            print(
                f"  {model} {task_name} #{new['index']}: {old['extracted']} -> {new['extracted']} (gold {new['gold']})"
            )
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return counts(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=[*MODELS, "all"], default="all")
    parser.add_argument("--task", choices=[*DATA, "all"], default="all")
    parser.add_argument("--questions", type=int, default=100)
    parser.add_argument("--regrade", action="store_true", help="grade saved completions again, no generation")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(2)
    summary_path = RESULTS / "grade_real.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    models = list(MODELS) if args.model == "all" else [args.model]
    tasks = list(DATA) if args.task == "all" else [args.task]
    print(f"{'model':<8} {'task':<14} {'rows':>5} {'correct':>8} {'verified':>9} {'no answer':>10} {'seconds':>8}")
    for model in models:
        for task_name in tasks:
            key = f"{model}/{task_name}"
            if args.regrade:
                found = regrade(model, task_name)
                if found is None:
                    continue
                summary[key] = {**summary.get(key, {}), **found}
            else:
                summary[key] = generate(model, task_name, args.questions)
            row = summary[key]
            print(
                f"{model:<8} {task_name:<14} {row['rows']:>5} {row['correct']:>8} {row['verified']:>9} "
                f"{row['no_answer']:>10} {row.get('seconds', float('nan')):>8}"
            )
            summary_path.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
