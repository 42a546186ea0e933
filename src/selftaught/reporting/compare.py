"""``selftaught compare RUN RUN ...``: one table and one plot with every run's accuracy curve overlaid."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from selftaught.rundir import RunDir, Summary


def load_summaries(run_dirs: list[Path]) -> list[tuple[str, Summary]]:
    """(label, summary) per run; the label is the folder name, made unique with its parent if needed."""
    loaded = []
    for run_dir in run_dirs:
        run = RunDir(run_dir)
        if not run.summary.is_file():
            raise FileNotFoundError(f"{run_dir} has no summary.json (not a run directory, or no iteration finished)")
        loaded.append((Path(run_dir).resolve().name, run.read_summary()))
    names = [name for name, _ in loaded]
    if len(set(names)) < len(names):
        loaded = [
            (str(Path(d).resolve().relative_to(Path(d).resolve().parents[1])), s) for d, (_, s) in zip(run_dirs, loaded)
        ]
    return loaded


def compare_table(runs: list[tuple[str, Summary]]) -> Table:
    """One row per run: iterations, M0 accuracy, final and best accuracy, samples kept / rationalized / rejected."""
    kinds = sorted({f"{s.task} ({s.mode})" for _, s in runs})
    table = Table(title=f"STaR runs compared: {', '.join(kinds)}")
    table.add_column("run", no_wrap=True)
    for name in ["iters", "M0 acc", "final acc", "best (iter)", "kept", "rat.", "rej."]:
        table.add_column(name, justify="right", no_wrap=True)
    for label, summary in runs:
        rows = summary.rows()
        its = summary.iterations
        best = max(rows, key=lambda r: r.accuracy) if rows else None
        base = summary.base.accuracy if summary.base is not None else None
        table.add_row(
            label,
            str(len(its)),
            f"{base:.1%}" if base is not None else "-",
            f"{its[-1].accuracy:.1%}" if its else "-",
            f"{best.accuracy:.1%} ({best.iteration})" if best else "-",
            *(str(sum(r.counts().get(k, 0) for r in its)) for k in ("num_kept", "num_rationalized", "num_rejected")),
        )
    return table


def plot_compare(runs: list[tuple[str, Summary]], path: str | Path) -> Path:
    """Test accuracy per iteration (0 = M0), one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for label, summary in runs:
        rows = summary.rows()
        ax.plot([r.iteration for r in rows], [r.accuracy for r in rows], marker="o", label=label)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("iteration (0 = M0)")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("accuracy across STaR iterations")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
