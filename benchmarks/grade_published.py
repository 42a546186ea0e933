"""selftaught's GSM8K and CommonsenseQA graders on published LLM outputs, against the source's own scores.

The published set: the results of "Re-Reading Improves Reasoning in Large Language Models" (Xu et al.,
github.com/Tebmer/Rereading-LLM-Reasoning, ``results/``): text-davinci-003, gpt-3.5-turbo and gpt-4o-mini
on the whole GSM8K test set (1,319) and CommonsenseQA dev set (1,221), two prompts each ("vanilla" and
"cot"), every row with the model's text, the answer the authors extracted (mostly from ``\\boxed{}``)
and their 0/1 score. selftaught grades each text as it is (`extract_gsm8k_answer` / `extract_choice`
against the gold answer) and counts where the two verdicts differ. The source's scorer is no ground
truth (it reads "$70,000" as 70 and takes the last of two boxed choices), so every disagreement is
written out to be read by hand; ``--verdicts FILE`` (JSON: {key: "ours" | "source"}, the side whose
verdict a careful reader shares) turns the reading into counts of each side's errors, and ``--texts FILE`` writes the
disagreements not read yet, each with the end of its text, for the next reading.

These outputs are held out: a rule is fixed when they show it wrong, but no test copies them.

Run:  git clone https://github.com/Tebmer/Rereading-LLM-Reasoning /tmp/reread   (or any copy of results/)
      .venv/bin/python benchmarks/grade_published.py --source /tmp/reread/results \\
          --verdicts benchmarks/results/grade_published_verdicts.json
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
from selftaught.tasks.answers import extract_gsm8k_answer, numbers_equal  # noqa: E402
from selftaught.tasks.choices import extract_choice  # noqa: E402
from selftaught.tasks.gsm8k import percent_as_fraction  # noqa: E402

METHODS = ("vanilla", "cot")
# which model and prompt wrote each file (the repository's results/README.md): its timestamp -> label
LABELS = {
    "20230828_141934": "davinci-003", "20230828_142302": "davinci-003 Re2",
    "20230828_1157": "gpt-3.5", "20230828_1200": "gpt-3.5 Re2",
    "20240926_221724": "gpt-4o-mini", "20240926_222057": "gpt-4o-mini Re2",
    "20230912_002205": "davinci-003", "20230912_002237": "davinci-003 Re2",
    "20230912_002124": "gpt-3.5", "20230912_002132": "gpt-3.5 Re2",
    "20240926_224916": "gpt-4o-mini", "20240926_225049": "gpt-4o-mini Re2",
}  # fmt: skip


def label(stem: str) -> str:
    """ "gsm8k gpt-3.5 Re2" for a results file's stem."""
    task = "gsm8k" if stem.startswith("gsm_") else "csqa"
    return f"{task} {next((name for stamp, name in LABELS.items() if stem.endswith(stamp)), stem[-15:])}"


def _record(value) -> dict:
    """A row's field: a dict, or the Python literal of one (some files store ``str(dict)``)."""
    return value if isinstance(value, dict) else ast.literal_eval(value)


def grade_row(row: dict, method: str) -> tuple[str | None, bool, bool] | None:
    """(our extracted answer, our verdict, the source's verdict) for one row's ``method`` output; None
    when the source has no text for it."""
    record = _record(row[method])
    texts = record.get("generation") or []
    if not texts or not texts[0]:
        return None
    text, source = texts[0], bool(record.get("score"))
    if "input" in row:  # GSM8K: the task's own numeric check (percent-as-fraction included)
        predicted, gold = extract_gsm8k_answer(text, row["input"]), str(row["target"])
        right = predicted is not None and (
            numbers_equal(predicted, gold) or percent_as_fraction(predicted, gold, row["input"])
        )
        return predicted, right, source
    question = _record(row["question"])
    choices = [(c["label"].lower(), c["text"]) for c in question["choices"]]
    predicted = extract_choice(text, choices)
    return predicted, predicted is not None and predicted == row["answerKey"].lower(), source


def grade_file(path: Path) -> tuple[dict, list[dict]]:
    """Counts per method and the disagreements of one results file."""
    counts = {method: Counter() for method in METHODS}
    disagreements = []
    for line in path.read_text().splitlines():
        row = json.loads(line)
        for method in METHODS:
            graded = grade_row(row, method) if method in row else None
            if graded is None:
                counts[method]["no_text"] += 1
                continue
            predicted, ours, source = graded
            counts[method]["rows"] += 1
            counts[method]["ours"] += ours
            counts[method]["source"] += source
            if ours != source:
                key = f"{path.stem}:{row['id']}:{method}"
                text = _record(row[method])["generation"][0]
                gold = row.get("target", row.get("answerKey"))
                disagreements.append({"key": key, "gold": gold, "ours": predicted, "ours_correct": ours,
                                      "source": _record(row[method]).get("answer"), "tail": text[-400:]})  # fmt: skip
    return counts, disagreements


def summarize(results: dict, disagreements: list[dict], verdicts: dict[str, str]) -> list[dict]:
    rows = []
    for name, counts in results.items():
        for method, c in counts.items():
            if not c["rows"]:
                continue
            mine = [d for d in disagreements if d["key"].startswith(f"{name}:") and d["key"].endswith(f":{method}")]
            read = [d for d in mine if d["key"] in verdicts]
            ours_wrong = [d for d in read if verdicts[d["key"]] != "ours"]
            rows.append(
                {
                    "file": name,
                    "label": label(name),
                    "method": method,
                    "rows": c["rows"],
                    "accepted_ours": c["ours"],
                    "accepted_source": c["source"],
                    "disagreements": len(mine),
                    "agreement": round(1 - len(mine) / c["rows"], 4),
                    "read_by_hand": len(read),
                    "ours_false_accepts": sum(d["ours_correct"] for d in ours_wrong),
                    "ours_misses": sum(not d["ours_correct"] for d in ours_wrong),
                    "source_errors": sum(verdicts[d["key"]] != "source" for d in read),
                }
            )
    return rows


def totals(rows: list[dict]) -> dict[str, dict]:
    """Per task, the sums over files and prompts; agreement and error rates over all outputs."""
    summed: dict[str, Counter] = {}
    for r in rows:
        task = summed.setdefault(r["label"].split()[0], Counter())
        task.update({k: v for k, v in r.items() if isinstance(v, int)})
    return {
        task: dict(c)
        | {
            "agreement": round(1 - c["disagreements"] / c["rows"], 4),
            "ours_false_accept_rate": round(c["ours_false_accepts"] / c["rows"], 5),
            "ours_miss_rate": round(c["ours_misses"] / c["rows"], 5),
        }
        for task, c in summed.items()
    }


def print_table(rows: list[dict]) -> None:
    print(f"{'outputs':<22}{'prompt':<8}{'rows':>5}{'ours':>5}{'src':>5}{'diff':>5}{'agree':>7}{'read':>5}"
          f"{'FA':>4}{'miss':>5}{'src err':>7}")  # fmt: skip
    for r in rows:
        print(f"{r['label']:<22}{r['method']:<8}{r['rows']:>5}{r['accepted_ours']:>5}{r['accepted_source']:>5}"
              f"{r['disagreements']:>5}{r['agreement']:>7.1%}{r['read_by_hand']:>5}{r['ours_false_accepts']:>4}"
              f"{r['ours_misses']:>5}{r['source_errors']:>7}")  # fmt: skip
    print("ours / src: accepted by selftaught / by the source's scorer")
    print("FA, miss: selftaught's false accepts and misses found reading the disagreements")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True, help="the folder of the published *.jsonl results")
    parser.add_argument("--verdicts", default="", help="JSON {disagreement key: 'ours' | 'source'}")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "grade_published.json"))
    parser.add_argument("--texts", default="", help="also write the unread disagreements with their texts' ends here")
    args = parser.parse_args()
    files = sorted(p for p in Path(args.source).glob("*.jsonl") if p.name.startswith(("gsm_", "commonsenseqa_")))
    files = [p for p in files if not p.stem.endswith("_eval") and "233258" not in p.stem]  # 20-row PAL/PS runs
    if not files:
        raise SystemExit(f"{args.source}: no gsm_*.jsonl or commonsenseqa_*.jsonl files")
    results, disagreements = {}, []
    for path in files:
        results[path.stem], found = grade_file(path)
        disagreements += found
    verdicts = json.loads(Path(args.verdicts).read_text()) if args.verdicts else {}
    stale = len(verdicts.keys() - {d["key"] for d in disagreements})
    if stale:  # disagreements of an earlier grader that this one settles as the source does
        print(f"{stale} verdicts are for texts the two graders now agree on")
    rows = summarize(results, disagreements, verdicts)
    print_table(rows)
    summed = totals(rows)
    for task, t in summed.items():
        print(f"{task}: {t['rows']} outputs, {t['agreement']:.1%} agree with the source; read {t['read_by_hand']} of "
              f"{t['disagreements']} disagreements:\n  selftaught {t['ours_false_accepts']} false accepts, "
              f"{t['ours_misses']} misses; the source {t['source_errors']} errors")  # fmt: skip
    payload = {"source": "github.com/Tebmer/Rereading-LLM-Reasoning results/", "totals": summed, "rows": rows}
    # keys, answers and verdicts only: the texts stay in their source (--texts writes them for reading)
    payload["disagreements"] = [
        {k: v for k, v in d.items() if k != "tail"} | {"verdict": verdicts.get(d["key"], "")} for d in disagreements
    ]
    Path(args.out).write_text(json.dumps(payload, indent=1) + "\n")
    print(f"wrote {args.out}")
    if args.texts:
        unread = [d for d in disagreements if d["key"] not in verdicts]
        Path(args.texts).write_text(json.dumps(unread, indent=1) + "\n")
        print(f"wrote {args.texts}: {len(unread)} disagreements not yet read, with the end of each text")


if __name__ == "__main__":
    main()
