"""``report.html``: one self-contained page per run (plots inlined as base64 PNG, no external assets).

It shows the accuracy table and plots, and for every iteration a sample of what the model actually
wrote: kept rationales, rationalized ones (found with the answer as a hint, trained on without it), and
rejected ones with the reason (wrong answer, no answer, or the step that failed the check). Model output
is untrusted: every piece of text is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

from selftaught import star
from selftaught.common.atomic import atomic_write_text
from selftaught.config import Config, ConfigError
from selftaught.reporting.table import accuracy_png
from selftaught.rundir import RunDir, StepDir, Summary, read_saved_config
from selftaught.samples import Sample, read_samples

SAMPLES_PER_KIND = 3
MAX_TEXT_CHARS = 1500

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; } th, td { border: 1px solid #ccc; padding: 4px 8px; }
td { text-align: right; } th { background: #f3f3f3; }
pre { white-space: pre-wrap; word-break: break-all; background: #f7f7f7; padding: 6px; margin: 4px 0; }
.kept { border-left: 5px solid #2a9d50; } .rationalized { border-left: 5px solid #e0a800; }
.rejected { border-left: 5px solid #c0392b; } .sample { padding-left: 8px; margin: 8px 0; }
.reason { color: #c0392b; font-weight: bold; } .meta { color: #666; font-size: 90%; }
img { max-width: 100%; }
"""


def png_data_uri(fig) -> str:
    """A matplotlib figure as a ``data:image/png;base64,...`` URI (the page carries its images)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _png_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def progress_plot(summary: Summary) -> str:
    """Accuracy per iteration (line) and kept / rationalized / rejected counts (bars), as a data URI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = summary.rows()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    left.plot([r.iteration for r in rows], [r.accuracy for r in rows], marker="o")
    left.set(xlabel="iteration (0 = M0)", ylabel="test accuracy", ylim=(-0.02, 1.02), title="accuracy")
    left.grid(alpha=0.3)
    its = [r for r in rows if r.iteration > 0]
    x = [r.iteration for r in its]
    bottom = [0] * len(its)
    for key, color in (("num_kept", "#2a9d50"), ("num_rationalized", "#e0a800"), ("num_rejected", "#c0392b")):
        values = [getattr(r, key) or 0 for r in its]
        right.bar(x, values, bottom=bottom, color=color, label=key.removeprefix("num_"))
        bottom = [b + v for b, v in zip(bottom, values)]
    right.set(xlabel="iteration", ylabel="samples", title="kept / rationalized / rejected")
    from matplotlib.ticker import MaxNLocator

    for axis in (left, right):
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    right.legend(fontsize=8)
    fig.tight_layout()
    uri = png_data_uri(fig)
    plt.close(fig)
    return uri


def _table(summary: Summary) -> str:
    rows = summary.rows()
    buckets = list(rows[-1].accuracy_by_bucket) if rows else []
    head = ["iter", "accuracy", *buckets, "kept", "rationalized", "rejected", "steps", "gen s", "train s", "eval s"]
    out = ["<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    for row in rows:
        secs = row.seconds or {}
        counts = (row.num_kept, row.num_rationalized, row.num_rejected, row.train_steps)
        cells = [
            str(row.iteration),
            f"{row.accuracy:.1%}",
            *(f"{row.accuracy_by_bucket.get(b, 0):.0%}" for b in buckets),
            *("-" if count is None else str(count) for count in counts),
            f"{secs.get('generate', 0) + secs.get('rationalize', 0):.0f}",
            f"{secs.get('train', 0):.0f}",
            f"{secs.get('evaluate', 0):.0f}",
        ]
        out.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    return "\n".join(out) + "</table>"


def rejection_reason(row: Sample, gold: str | None) -> str:
    """Why a sample was not kept.

    >>> rejection_reason(Sample("q", False, 0, "...", "12", False, False, None), "13")
    "wrong answer: '12' (expected '13')"
    >>> rejection_reason(Sample("q", False, 0, "...", "13", True, False, "step 2: 7+5 is not 13"), "13")
    'failed step: step 2: 7+5 is not 13'
    """
    if row.correct:
        return f"failed step: {row.problem or 'rationale check failed'}"
    expected = f" (expected {gold!r})" if gold is not None else ""
    if row.answer is None:
        return f"no answer found{expected}"
    return f"wrong answer: {row.answer!r}{expected}"


def classify(rows: list[Sample], filter_mode: str) -> dict[str, list[Sample]]:
    """Samples split into kept (plain), rationalized (hinted, kept) and rejected (failed the filter)."""
    kinds: dict[str, list[Sample]] = {"kept": [], "rationalized": [], "rejected": []}
    for row in rows:
        if star.is_kept(row, filter_mode):
            kinds["rationalized" if row.hinted else "kept"].append(row)
        else:
            kinds["rejected"].append(row)
    return kinds


def _spread(rows: list[Sample], k: int) -> list[Sample]:
    """``k`` rows spread evenly over the list (deterministic)."""
    if len(rows) <= k:
        return rows
    return [rows[round(i * (len(rows) - 1) / (k - 1))] for i in range(k)] if k > 1 else rows[:1]


def _clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT_CHARS else text[:MAX_TEXT_CHARS] + f" [... {len(text) - MAX_TEXT_CHARS} more]"


def _sample_html(kind: str, row: Sample, examples: dict) -> str:
    example = examples.get(row.id)
    question = f"<b>question</b> {html.escape(_clip(example.question))} " if example else ""
    gold = example.answer if example else None
    reason = f'<div class="reason">{html.escape(rejection_reason(row, gold))}</div>' if kind == "rejected" else ""
    hinted = " (with the answer as a hint)" if row.hinted else ""
    return (
        f'<div class="sample {kind}"><div class="meta">id {html.escape(str(row.id))}{hinted}</div>'
        f"{question}{reason}<pre>{html.escape(_clip(str(row.text)))}</pre></div>"
    )


def _train_examples(config: Config | None) -> dict:
    """Training questions by id, rebuilt from the saved config; {} when the data is not reachable."""
    if config is None:
        return {}
    try:
        from selftaught.tasks import make_task

        return {ex.id: ex for ex in make_task(config).load("train")}
    except Exception:  # a report must not fail because the data moved: samples then show ids only
        return {}


def _iteration_html(folder: StepDir, filter_mode: str, examples: dict) -> str:
    generated = folder.generated
    if not generated.is_file():
        return ""
    kinds = classify(read_samples(generated), filter_mode)
    parts = [f"<h3>{folder.name}</h3>"]
    for kind, rows in kinds.items():
        parts.append(f"<h4>{kind}: {len(rows)} samples</h4>")
        parts += [_sample_html(kind, row, examples) for row in _spread(rows, SAMPLES_PER_KIND)]
    return "\n".join(parts)


def write_html_report(run_dir: str | Path) -> Path:
    """Write the run's HTML report and return its path."""
    run = RunDir(run_dir)
    summary = run.read_summary()
    config = _saved_config(run)
    filter_mode = config.loop.filter if config is not None else Config().loop.filter
    examples = _train_examples(config)
    by_bucket = _png_uri(accuracy_png(summary))  # drawn in memory: report() owns accuracy.png
    versions = ", ".join(f"{k} {v}" for k, v in (summary.versions or {}).items())
    iterations = [_iteration_html(run.iteration(r.iteration), filter_mode, examples) for r in summary.rows()]
    title = f"{run.root.resolve().name}: STaR on {summary.task} ({summary.mode})"
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{STYLE}</style></head>
<body><h1>{html.escape(title)}</h1>
<p class="meta">base model {html.escape(str(summary.base_model))}; filter {html.escape(filter_mode)}<br>
{html.escape(versions)}</p>
<h2>Accuracy</h2>{_table(summary)}
<img alt="accuracy and sample counts per iteration" src="{progress_plot(summary)}">
<img alt="accuracy by bucket" src="{by_bucket}">
<h2>What the model wrote</h2>
<p>Per iteration, up to {SAMPLES_PER_KIND} samples of each kind: <b>kept</b> (right answer, steps check out),
<b>rationalized</b> (found with the answer as a hint; trained on without it), <b>rejected</b> (with the reason).</p>
{"".join(iterations)}
</body></html>
"""
    atomic_write_text(run.html_report, page)
    return run.html_report


def _saved_config(run: RunDir) -> Config | None:
    """The run's config, read once; None if it cannot be read (the report still shows, with defaults)."""
    try:
        return read_saved_config(run.root)
    except ConfigError:
        return None
