"""Feed the CLI malformed input of every kind a user can hand us; each must get exit code 2 and one
clear line naming the file, line and field, and never a traceback.

Cases run in-process through the real `selftaught` command (typer's test runner), each in its own
temporary folder. Prints a markdown table (case, exit code, message) and writes JSON.
Run:  .venv/bin/python checks/malformed_inputs.py
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

GOOD_GSM = '{"question": "What is 2+3?", "answer": "2+3=<<2+3=5>>5\\n#### 5"}\n'
GOOD_CSQA = (
    '{"answerKey": "A", "id": "a1", "question": {"stem": "Where?", "choices": '
    '[{"label": "A", "text": "here"}, {"label": "B", "text": "there"}]}}\n'
)
FEW_SHOT = "Q: What is 1+1?\nA: 1+1=<<1+1=2>>2\n#### 2\n"


def gsm(train: str | bytes, few_shot: str | bytes = FEW_SHOT, extra: list[str] = ()) -> dict:
    return {
        "files": {"train.jsonl": train, "test.jsonl": GOOD_GSM, "few.txt": few_shot},
        "task": "gsm8k",
        "extra": extra,
    }


def csqa(train: str, few_shot: str = "") -> dict:
    files = {"train.jsonl": train, "test.jsonl": GOOD_CSQA}
    if few_shot:
        files["few.txt"] = few_shot
    return {"files": files, "task": "commonsenseqa", "extra": []}


def jsonl(train: str | bytes, name: str = "train.jsonl", extra: list[str] = ()) -> dict:
    return {"files": {name: train, "test.jsonl": '{"question": "q", "answer": "a"}\n'}, "task": "jsonl", "extra": extra}


def overrides(*sets: str) -> dict:
    return {"args": ["run", "--out", "{tmp}/out", *[x for s in sets for x in ("--set", s)]]}


CASES: dict[str, dict] = {
    # ---- datasets
    "bad JSON line": gsm(GOOD_GSM + '{"question": "x", "answer": \n'),
    "missing question field": gsm('{"answer": "#### 5"}\n'),
    "missing answer field": gsm('{"question": "q"}\n'),
    "answer without ####": gsm('{"question": "q", "answer": "it is 5"}\n'),
    "unparseable gold answer": gsm('{"question": "q", "answer": "#### five"}\n'),
    "empty dataset file": gsm(""),
    "non-UTF-8 bytes": gsm(b'{"question": "caf\xe9", "answer": "#### 5"}\n'),
    "10 MB line": gsm('{"question": "' + "x" * 10_000_000 + '", "answer": "#### 5"}\n'),
    "duplicate ids": gsm('{"id": 1, "question": "a", "answer": "#### 1"}\n' * 2, extra=["task.data.id_field=id"]),
    "question is a list": gsm('{"question": [1, 2], "answer": "#### 5"}\n'),
    "empty question": gsm('{"question": "  ", "answer": "#### 5"}\n'),
    "line is a JSON array": gsm("[1, 2, 3]\n"),
    "train file missing": {**gsm(GOOD_GSM), "drop": "train.jsonl"},
    "train path is a plain folder": {**gsm(GOOD_GSM), "folder": "train.jsonl"},
    "unsupported file type": jsonl("question,answer\nq,a\n", name="train.txt"),
    "CSV missing column": jsonl("question,response\nq,a\n", name="train.csv"),
    "CSV extra cells": jsonl("question,answer\nq,a,b\n", name="train.csv"),
    "CSQA answerKey not a label": csqa(GOOD_CSQA.replace('"answerKey": "A"', '"answerKey": "Z"')),
    "CSQA choices not a list": csqa('{"answerKey": "A", "id": "x", "question": {"stem": "s", "choices": "A"}}\n'),
    "CSQA choice without label": csqa(
        '{"answerKey": "A", "id": "x", "question": {"stem": "s", "choices": [{"text": "t"}]}}\n'
    ),
    "CSQA missing stem": csqa('{"answerKey": "A", "id": "x", "question": {"choices": []}}\n'),
    "jsonl nested field missing": jsonl(
        '{"question": {"text": "q"}, "answer": "a"}\n', extra=["task.data.question_field=question.stem"]
    ),
    "jsonl unparseable number": jsonl('{"question": "q", "answer": "many"}\n', extra=["task.data.normalizer=number"]),
    # ---- few-shot files
    "few-shot file missing": {**gsm(GOOD_GSM), "drop": "few.txt"},
    "few-shot block without A:": gsm(GOOD_GSM, "Q: what?\nno answer line\n"),
    "few-shot file empty": gsm(GOOD_GSM, ""),
    "few-shot non-UTF-8": gsm(GOOD_GSM, b"Q: caf\xe9?\nA: #### 1\n"),
    "CSQA few-shot without final (x)": csqa(GOOD_CSQA, "Q: Where?\nAnswer Choices:\n(a) here\nA: no letter here.\n"),
    "GSM8K few-shot without ####": gsm(GOOD_GSM, "Q: What is 1+1?\nA: it is two\n"),
    # ---- recipes
    "recipe: bad YAML": {"recipe": "loop:\n  iterations: [1\n"},
    "recipe: top level is a list": {"recipe": "- a\n- b\n"},
    "recipe: unknown top-level key": {"recipe": "loops:\n  iterations: 2\n"},
    "recipe: unknown nested key": {"recipe": "train:\n  lr: 0.1\n"},
    "recipe: section given as a number": {"recipe": "loop: 5\n"},
    "recipe: non-UTF-8": {"recipe": b"seed: 1 # caf\xe9\n"},
    "recipe: file missing": {"args": ["run", "no-such-recipe.yaml"]},
    # ---- overrides
    "override without '='": overrides("loop.iterations"),
    "override: unknown key": overrides("loop.iteration=3"),
    "override: negative steps": overrides("train.first_steps=-5"),
    "override: zero iterations": overrides("loop.iterations=0"),
    "override: text for an int": overrides("loop.iterations=abc"),
    "override: bool for an int": overrides("loop.iterations=true"),
    "override: negative temperature": overrides("generation.temperature=-1"),
    "override: top_p above 1": overrides("generation.top_p=2"),
    "override: samples > 1 while greedy": overrides("generation.num_samples=4"),
    "override: unknown filter": overrides("loop.filter=bogus"),
    "override: unknown task": overrides("task.name=nonexistent"),
    "override: task import path broken": overrides("task.name=no_such_module:Task"),
    "override: unknown device": overrides("model.device=tpu"),
    "override: invalid regex": overrides("task.data.answer_pattern=("),
    "override: regex without a group": overrides("task.data.answer_pattern=\\d+"),
    "override: heads do not divide hidden": overrides("model.base.hidden_size=130"),
    "override: zero digits": overrides("task.arithmetic.train_digits=[0]"),
    "override: unclosed YAML value": overrides("task.arithmetic.train_digits=[1, 2"),
    # ---- models and output paths
    "model path missing": {**gsm(GOOD_GSM), "extra": ["model.name_or_path=/nonexistent/model"]},
    "model path is an empty folder": {**gsm(GOOD_GSM), "extra": ["model.name_or_path={tmp}/empty"], "mkdir": "empty"},
    "output under a file": {"args": ["run", "--out", "{tmp}/file/run"], "files": {"file": "x"}},
    "output already holds a run": {"args": ["run", "--out", "{tmp}/run"], "files": {"run/config.yaml": "seed: 0\n"}},
    "resume a missing run": {"args": ["run", "--resume", "{tmp}/nothing"]},
    "resume with a changed config": {
        "args": ["run", "--resume", "{tmp}/run", "--set", "seed=3"],
        "files": {"run/config.yaml": "seed: 0\n"},
    },
    "report on a non-run folder": {"args": ["report", "{tmp}"]},
    "validate an unsupported task": {"args": ["data", "validate", "--task", "arithmetic", "--path", "x.jsonl"]},
    "eval: samples without temperature": {"args": ["eval", "embedded", "--samples", "2", "--temperature", "0"]},
}


def materialize(case: dict, tmp: Path) -> list[str]:
    """Write the case's files under ``tmp`` and return the CLI arguments."""
    for name, content in case.get("files", {}).items():
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    if "drop" in case:
        (tmp / case["drop"]).unlink()
    if "folder" in case:
        (tmp / case["folder"]).unlink()
        (tmp / case["folder"]).mkdir()
    if "mkdir" in case:
        (tmp / case["mkdir"]).mkdir()
    if "recipe" in case:
        recipe = tmp / "recipe.yaml"
        recipe.write_bytes(case["recipe"] if isinstance(case["recipe"], bytes) else case["recipe"].encode())
        return ["run", str(recipe), "--out", str(tmp / "out")]
    if "task" in case:
        train = next(n for n in case["files"] if n.startswith("train"))
        sets = [
            f"task.name={case['task']}",
            f"task.data.train={tmp / train}",
            f"task.data.test={tmp / 'test.jsonl'}",
            "model.name_or_path={tmp}/model",
            *case.get("extra", []),
        ]
        if "few.txt" in case["files"]:
            sets.append(f"task.data.few_shot={tmp / 'few.txt'}")
        args = ["run", "--out", str(tmp / "out")] + [x for s in sets for x in ("--set", s)]
        return [a.replace("{tmp}", str(tmp)) for a in args]
    return [a.replace("{tmp}", str(tmp)) for a in case["args"]]


def run_case(name: str, case: dict) -> dict:
    from typer.testing import CliRunner

    from selftaught.cli import app

    with tempfile.TemporaryDirectory() as tmp:
        args = materialize(case, Path(tmp))
        result = CliRunner().invoke(app, args)
        stderr = result.stderr.strip().replace(tmp, "TMP")
    crashed = result.exception is not None and not isinstance(result.exception, SystemExit)
    lines = [line for line in stderr.splitlines() if line.strip()]
    return {
        "case": name,
        "exit": result.exit_code,
        "message": stderr,
        "ok": result.exit_code == 2 and len(lines) == 1 and "Traceback" not in stderr and not crashed,
    }


def main() -> int:
    results = [run_case(name, case) for name, case in CASES.items()]
    print("| # | malformed input | exit | message |\n|---|---|---|---|")
    for k, r in enumerate(results, 1):
        print(f"| {k} | {r['case']} | {r['exit']} | {r['message'][:150].replace('|', '/')} |")
    ok = sum(r["ok"] for r in results)
    print(f"\n{ok}/{len(results)} inputs: exit 2, one line, no traceback")
    out = Path(__file__).parent / "results" / "malformed_inputs.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    return 0 if ok == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
