"""`selftaught grade` on the real data of ../shared: every GSM8K gold solution and every CommonsenseQA
dev answer, written in the styles models produce, graded through the CLI as a user would.

Rows (each a whole `selftaught grade` run over the full file):
* gsm8k gold: each test solution as the completion: all should be correct and verified;
* gsm8k gold + continuation: the same, running on into a made-up next question (a base model);
* gsm8k wrong: the gold solution with its final answer changed to N+1: none may be accepted;
* gsm8k instruct: the solution's steps, then "**Answer:** N" and a remark holding another number;
* commonsenseqa few-shot style: "... Therefore, the answer is <text> (<label>)." then a next question;
* commonsenseqa instruct: "Answer: <LABEL>) <text>";
* commonsenseqa wrong / hedge / contradiction: a wrong choice, two choices, a letter with another's text:
  none may be accepted.

Run:  .venv/bin/python checks/grade_shared.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"
NEXT = "\n\nQ: Weng earns $12 an hour for babysitting. How much did she earn?\nA: 12/60 = <<12/60=0.2>>0.2\n#### 10"


def gsm8k_variants(row: dict) -> dict[str, str]:
    solution = row["answer"]
    steps, _, final = solution.rpartition("####")
    answer = final.strip().replace(",", "")
    wrong = str(int(float(answer)) + 1) if answer.lstrip("-").replace(".", "").isdigit() else answer + "1"
    return {
        "gsm8k gold": solution,
        "gsm8k gold + continuation": " " + solution + NEXT,
        "gsm8k wrong": steps + "#### " + wrong,
        "gsm8k instruct": steps.strip() + f"\n\n**Answer:** {final.strip()}\n\n(That is 3 more than 7 - 4 = 3.)",
    }


def csqa_variants(row: dict) -> dict[str, str]:
    choices = {c["label"]: c["text"] for c in row["question"]["choices"]}
    key = row["answerKey"]
    other = next(label for label in choices if label != key)
    return {
        "commonsenseqa few-shot style": f" The answer must fit the question. Therefore, the answer is {choices[key]} "
        f"({key.lower()}).{NEXT}",
        "commonsenseqa instruct": f"Let me consider each option.\n\nAnswer: {key}) {choices[key]}",
        "commonsenseqa wrong": f" Therefore, the answer is {choices[other]} ({other.lower()}).",
        "commonsenseqa hedge": f"The answer is ({key.lower()}) {choices[key]} or ({other.lower()}) {choices[other]}.",
        "commonsenseqa contradiction": f"The answer is {key}, {choices[other]}.",
    }


def grade(task: str, rows: list[dict], folder: Path, name: str) -> dict:
    path = folder / (name.replace(" ", "_").replace("+", "plus") + ".jsonl")
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cmd = [sys.executable, "-m", "selftaught.cli", "grade", "--task", task, "--path", str(path), "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def main() -> None:
    sources = {
        "gsm8k": (DATA / "gsm8k" / "test.jsonl", gsm8k_variants),
        "commonsenseqa": (DATA / "commonsenseqa" / "dev_rand_split.jsonl", csqa_variants),
    }
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for task, (path, variants) in sources.items():
            if not path.is_file():
                print(f"skipped {task}: {path} is absent")
                continue
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            by_variant: dict[str, list[dict]] = {}
            for row in rows:
                for name, completion in variants(row).items():
                    by_variant.setdefault(name, []).append({**row, "completion": completion})
            for name, graded_rows in by_variant.items():
                counts = grade(task, graded_rows, Path(tmp), name)
                counts.pop("out")
                results.append({"variant": name, **counts})
    print(f"{'variant':34} {'rows':>5} {'correct':>8} {'verified':>9} {'no answer':>10}")
    for r in results:
        print(f"{r['variant']:34} {r['rows']:>5} {r['correct']:>8} {r['verified']:>9} {r['no_answer']:>10}")
    out = REPO / "checks" / "results" / "grade_shared.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
