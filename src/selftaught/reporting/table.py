"""Tables and plots of a run directory."""

from __future__ import annotations

import errno
import io
from collections.abc import Callable
from pathlib import Path

from rich.table import Table

from selftaught.common.atomic import atomic_write_bytes
from selftaught.rundir import check_metrics, damaged, read_json

REWRITE = "resume the run (selftaught run --resume DIR) to rewrite it"


def _rows(summary: dict) -> list[dict]:
    base = summary.get("base")
    return ([base] if base else []) + summary.get("iterations", [])


def summary_table(summary: dict) -> Table:
    """One row per iteration (0 = M0): accuracy overall and per bucket, data kept, time per phase."""
    rows = _rows(summary)
    buckets = list(rows[-1]["accuracy_by_bucket"]) if rows else []
    table = Table(title=f"STaR run: {summary.get('task')} ({summary.get('mode')})")
    for name in ["iter", "acc", *buckets, "kept", "rat.", "steps", "gen s", "train s", "eval s"]:
        table.add_column(name, justify="right")
    for row in rows:
        secs = row.get("seconds", {})
        gen = secs.get("generate", 0) + secs.get("rationalize", 0)
        table.add_row(
            str(row["iteration"]),
            f"{row['accuracy']:.1%}",
            *(f"{row['accuracy_by_bucket'].get(b, 0):.0%}" for b in buckets),
            str(row.get("num_kept", "-")),
            str(row.get("num_rationalized", "-")),
            str(row.get("train_steps", "-")),
            f"{gen:.0f}",
            f"{secs.get('train', 0):.0f}",
            f"{secs.get('evaluate', 0):.0f}",
        )
    return table


def plot_accuracy(summary: dict, path: str | Path) -> Path:
    """Write `accuracy_png` to ``path``."""
    atomic_write_bytes(path, accuracy_png(summary))  # never half a PNG, never written through a link
    return Path(path)


def accuracy_png(summary: dict) -> bytes:
    """PNG of accuracy per bucket (x) for each iteration (one line each)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    rows = _rows(summary)
    for k, row in enumerate(rows):
        buckets = list(row["accuracy_by_bucket"])
        label = "M0 (base)" if row["iteration"] == 0 else f"iteration {row['iteration']}"
        shade = plt.cm.viridis(k / max(len(rows) - 1, 1))
        ax.plot(buckets, [row["accuracy_by_bucket"][b] for b in buckets], marker="o", label=label, color=shade)
    ax.set_xlabel("bucket (digits for arithmetic)")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"{summary.get('task')}: accuracy by bucket across STaR iterations")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def read_summary(path: Path) -> dict:
    """``summary.json`` after checking its shape (a damaged one is one line naming it)."""
    summary = read_json(path, dict, REWRITE)
    rows = summary.get("iterations")
    if not isinstance(rows, list):
        raise damaged(path, "has no list of iterations", REWRITE)
    for row in ([summary["base"]] if summary.get("base") else []) + rows:
        check_metrics(row, path, REWRITE)
    return summary


def unless_read_only(write: Callable[[], Path], run_dir: str | Path, missed: str = "not written") -> Path | str:
    """``write()``'s path, or why it could not write: a read-only run still shows its table. A full
    disk is raised, to be reported like every other write."""
    try:
        return write()
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise
        return f"{missed} ({err.strerror or err}; {run_dir} is read-only?)"


def report(run_dir: str | Path) -> tuple[Table, Path | str]:
    """The run's table, and its plot redrawn (or, on a read-only run, why not: the table still shows)."""
    summary = read_summary(Path(run_dir) / "summary.json")
    plot = unless_read_only(lambda: plot_accuracy(summary, Path(run_dir) / "accuracy.png"), run_dir, "not redrawn")
    return summary_table(summary), plot
