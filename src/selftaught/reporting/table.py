"""Tables and plots of a run directory."""

from __future__ import annotations

import errno
import io
from collections.abc import Callable
from pathlib import Path

from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.table import Table

from selftaught.common.atomic import atomic_write_bytes
from selftaught.rundir import IterationMetrics, RunDir, Summary


def _buckets(rows: list[IterationMetrics]) -> list[str]:
    """Every bucket any row has, in the rows' own order (digit counts: "2" before "10")."""
    return list(dict.fromkeys(bucket for row in rows for bucket in row.accuracy_by_bucket))


def _chunks(items: list, size: int) -> list[list]:
    """``items`` in as few pieces of at most ``size`` as possible, their lengths as even as possible."""
    count = -(-len(items) // size)
    cut = [round(k * len(items) / count) for k in range(count + 1)]
    return [items[a:b] for a, b in zip(cut, cut[1:])]


class SummaryView:
    """The end-of-run report as rich renders it: the overall table first (iteration, accuracy, data
    kept, time per phase), then the accuracy per bucket. Where every bucket fits as a column of the
    overall table at the console's width, unwrapped, it is one table; otherwise the buckets are
    folded into as few narrow tables as fit, so that no cell is cut to "…" (an 80-column terminal,
    or a log file, which rich renders 80 wide)."""

    COUNTS = ["kept", "rat.", "steps", "gen s", "train s", "eval s"]

    def __init__(self, summary: Summary):
        self.summary = summary
        self.rows = self.summary.rows()
        self.buckets = _buckets(self.rows)
        self.bucket_label = "bucket"  # digit count, step count, ...: what a bucket is, the task says (its card)

    @property
    def row_count(self) -> int:
        """Rows of the overall table: one per iteration, M0 included (as ``Table.row_count``)."""
        return len(self.rows)

    def overall(self, buckets: list[str] = ()) -> Table:
        """Iteration, accuracy, ``buckets`` (none: no bucket column), data kept and time per phase."""
        table = Table(title=f"STaR run: {self.summary.task} ({self.summary.mode})")
        for name in ["iter", "acc", *buckets, *self.COUNTS]:
            table.add_column(name, justify="right", overflow="fold")
        for row in self.rows:
            secs = row.seconds or {}
            gen = secs.get("generate", 0) + secs.get("rationalize", 0)
            table.add_row(
                str(row.iteration),
                f"{row.accuracy:.1%}",
                *self._bucket_cells(row, buckets),
                *(str(value) if value is not None else "-" for value in self._counts(row)),
                f"{gen:.0f}",
                f"{secs.get('train', 0):.0f}",
                f"{secs.get('evaluate', 0):.0f}",
            )
        return table

    def by_bucket(self, buckets: list[str], title: str | None) -> Table:
        """Accuracy per bucket, one row per iteration, for ``buckets``."""
        table = Table(title=title)
        for name in ["iter", *buckets]:
            table.add_column(name, justify="right", overflow="fold")
        for row in self.rows:
            table.add_row(str(row.iteration), *self._bucket_cells(row, buckets))
        return table

    @staticmethod
    def _counts(row: IterationMetrics) -> tuple:
        return row.num_kept, row.num_rationalized, row.train_steps

    @staticmethod
    def _bucket_cells(row: IterationMetrics, buckets: list[str]) -> list[str]:
        accuracy = row.accuracy_by_bucket
        return [f"{accuracy[b]:.0%}" if b in accuracy else "-" for b in buckets]

    def tables(self, console: Console, options: ConsoleOptions) -> list[Table]:
        """The tables to print at ``options.max_width``: the one wide table if it fits unwrapped, else
        the overall table and the buckets folded."""
        width = options.max_width
        unbounded = options.update_width(10 * width + 1000)  # Measurement.get clamps to the max width

        def fits(table: Table) -> bool:
            return Measurement.get(console, unbounded, table).maximum <= width

        wide = self.overall(self.buckets)
        if not self.buckets or fits(wide):
            return [wide]
        # the most buckets per table that fit (every piece measured: the widest labels decide)
        size = len(self.buckets)
        while size > 1 and not all(fits(self.by_bucket(part, None)) for part in _chunks(self.buckets, size)):
            size -= 1
        parts = _chunks(self.buckets, size)
        title = f"accuracy by {self.bucket_label}"
        folded = [
            self.by_bucket(part, f"{title} ({k + 1}/{len(parts)})" if len(parts) > 1 else title)
            for k, part in enumerate(parts)
        ]
        return [self.overall(), *folded]

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield from self.tables(console, options)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement.get(console, options, self.overall())


def summary_table(summary: Summary) -> SummaryView:
    """One row per iteration (0 = M0): accuracy overall and per bucket, data kept, time per phase;
    the buckets fold into narrow tables below when they do not fit the console's width."""
    return SummaryView(summary)


def plot_accuracy(summary: Summary, path: str | Path) -> Path:
    """Write `accuracy_png` to ``path``."""
    atomic_write_bytes(path, accuracy_png(summary))  # never half a PNG, never written through a link
    return Path(path)


def accuracy_png(summary: Summary) -> bytes:
    """PNG of accuracy per bucket (x) for each iteration (one line each)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    rows = summary.rows()
    for k, row in enumerate(rows):
        buckets = list(row.accuracy_by_bucket)
        label = "M0 (base)" if row.iteration == 0 else f"iteration {row.iteration}"
        shade = plt.cm.viridis(k / max(len(rows) - 1, 1))
        ax.plot(buckets, [row.accuracy_by_bucket[b] for b in buckets], marker="o", label=label, color=shade)
    ax.set_xlabel("bucket (digits for arithmetic)")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"{summary.task}: accuracy by bucket across STaR iterations")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def unless_read_only(write: Callable[[], Path], run_dir: str | Path, missed: str = "not written") -> Path | str:
    """``write()``'s path, or why it could not write: a read-only run still shows its table. A full
    disk is raised, to be reported like every other write."""
    try:
        return write()
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise
        return f"{missed} ({err.strerror or err}; {run_dir} is read-only?)"


def report(run_dir: str | Path) -> tuple[SummaryView, Path | str]:
    """The run's tables, and its plot redrawn (or, on a read-only run, why not: the tables still show)."""
    run = RunDir(run_dir)
    summary = run.read_summary()  # a damaged summary.json is one line naming it
    plot = unless_read_only(lambda: plot_accuracy(summary, run.accuracy_plot), run_dir, "not redrawn")
    return summary_table(summary), plot
