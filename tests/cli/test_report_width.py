"""The end-of-run table at 80 columns (a terminal, or a log file): no cell cut to "…", the overall
accuracy of every iteration first, then every bucket's accuracy, folded when the buckets do not fit."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from rich.console import Console

from selftaught.reporting.table import report, summary_table
from selftaught.rundir import Summary


def _row(iteration: int, accuracy: float, by_bucket: dict, questions: int = 0) -> dict:
    """A ``summary.json`` row; ``questions`` > 0: an iteration's counts and times, scaled to it."""
    row = {"iteration": iteration, "accuracy": accuracy, "accuracy_by_bucket": by_bucket}
    if questions:
        kept = int(questions * (0.8 + 0.05 * iteration))
        rationalized = int((questions - kept) * 0.7)
        seconds = questions / 5  # the default run: ~1000 s per phase on 2 cores
        row |= {
            "num_questions": questions,
            "num_kept": kept,
            "num_rationalized": rationalized,
            "num_train_examples": kept + rationalized,
            "num_kept_unverified": 3,
            "num_rejected": questions - kept - rationalized,
            "train_steps": round(125 * 1.2 ** (iteration - 1)),
            "distributed": {"generation_workers": 2, "train_processes": 1},
            "seconds": {
                "generate": seconds,
                "rationalize": seconds / 4,
                "train": seconds * 1.5,
                "evaluate": seconds / 2,
            },
            "peak_rss_mib": {"generate": 812.4, "train": 1024.0},
        }
    return row


def _typed(summary: dict) -> Summary:
    return Summary.from_json(summary, Path("summary.json"))


def _summary(buckets: int, per_bucket: int = 300) -> dict:
    """Base + 2 iterations; accuracy falls with the digit count, less so each iteration."""
    names = [str(d) for d in range(1, buckets + 1)]
    rows = []
    for it, reach in enumerate([3, buckets // 2, buckets]):
        by_bucket = {b: max(0.0, min(1.0, 1.0 - (int(b) - reach) * 0.17 - 0.001 * int(b))) for b in names}
        overall = sum(by_bucket.values()) / len(by_bucket)
        rows.append(_row(it, overall, by_bucket, questions=it and per_bucket * buckets))
    return {"task": "arithmetic", "mode": "star", "base": rows[0], "iterations": rows[1:]}


CASES = {"default": (18, 300), "ten digits": (10, 300), "smoke": (3, 30)}


def _render(renderable) -> str:
    console = Console(width=80, file=io.StringIO(), force_terminal=False)
    console.print(renderable)
    return console.file.getvalue()


def _cells(line: str) -> list[str]:
    return [c.strip() for c in re.split(r"[│┃|]", line)[1:-1]]


@pytest.mark.parametrize("case", CASES)
def test_report_fits_80_columns_overall_first_then_every_bucket(case):
    buckets, per_bucket = CASES[case]
    summary = _summary(buckets, per_bucket)
    text = _render(summary_table(_typed(summary)))
    assert "…" not in text and "..." not in text
    assert max(len(line) for line in text.splitlines()) <= 80
    lines = text.splitlines()
    rows = [summary["base"], *summary["iterations"]]
    # overall accuracy of every iteration, on that iteration's first row, before any bucket detail
    first_rows = {}
    for n, line in enumerate(lines):
        cells = _cells(line)
        if cells and cells[0].isdigit():
            first_rows.setdefault(int(cells[0]), (n, cells))
    assert sorted(first_rows) == [r["iteration"] for r in rows]
    for row in rows:
        _, cells = first_rows[row["iteration"]]
        assert cells[1] == f"{row['accuracy']:.1%}"
    # every bucket's accuracy, for each iteration, under that bucket's header
    seen = {}
    header: list[str] = []
    for line in lines:
        cells = _cells(line)
        if cells and cells[0] == "iter":
            header = cells
        elif cells and cells[0].isdigit():
            for name, cell in zip(header, cells):
                seen[(int(cells[0]), name)] = cell
    for row in rows:
        for bucket, accuracy in row["accuracy_by_bucket"].items():
            assert seen[(row["iteration"], bucket)] == f"{accuracy:.0%}", (row["iteration"], bucket)
    last_overall = max(n for n, _ in first_rows.values())
    folded = [n for n, line in enumerate(lines) if "accuracy by bucket" in line]
    assert all(n > last_overall for n in folded)
    assert len(folded) == (2 if buckets == 18 else 1)  # 18 buckets: two tables of 9


def test_buckets_stay_columns_of_the_one_table_where_they_fit():
    console = Console(width=120, file=io.StringIO(), force_terminal=False)
    console.print(summary_table(_typed(_summary(3, 30))))
    text = console.file.getvalue()
    assert "accuracy by" not in text and text.count("┃ iter") == 1 and "┃    3 ┃" in text


def test_report_returns_what_the_cli_prints(tmp_path):
    from selftaught.common.atomic import atomic_write_json

    atomic_write_json(tmp_path / "summary.json", _summary(18))
    view, plot = report(tmp_path)
    assert view.row_count == 3 and "…" not in _render(view)


def test_buckets_missing_from_a_row_show_a_dash_and_long_labels_fold():
    summary = {
        "task": "commonsense_qa",
        "mode": "star",
        "base": _row(0, 0.25, {"short": 0.25}),
        "iterations": [_row(1, 0.5, {"short": 0.5, "medium": 0.5, "long": 0.5, **{f"b{k}": 0.5 for k in range(20)}})],
    }
    text = _render(summary_table(_typed(summary)))
    assert "…" not in text and "accuracy by bucket" in text and " - " in text


def test_compare_reads_each_run_as_a_summary(tmp_path):
    from selftaught.common.atomic import atomic_write_json
    from selftaught.reporting.compare import compare_table, load_summaries

    for name, buckets in (("demo", 18), ("smoke", 3)):
        atomic_write_json(tmp_path / name / "summary.json", _summary(buckets))
    text = _render(compare_table(load_summaries([tmp_path / "demo", tmp_path / "smoke"])))
    assert "…" not in text and "demo" in text and "smoke" in text
