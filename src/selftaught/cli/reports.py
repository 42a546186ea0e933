"""``selftaught report`` (one run's table, plot and HTML page) and ``selftaught compare`` (several runs)."""

from __future__ import annotations

from pathlib import Path

import typer

from selftaught.cli.root import UserError, app, one_line_errors, out_console
from selftaught.rundir import RunDir


@app.command("report")
def report_cmd(
    run_dir: Path = typer.Argument(..., help="a run directory"),
    debug: bool = typer.Option(False, "--debug", help="show tracebacks"),
) -> None:
    """Print a run's table, (re)draw its accuracy plot and write report.html (with samples of rationales)."""
    from selftaught.reporting.html import write_html_report
    from selftaught.reporting.table import report, unless_read_only

    with one_line_errors(debug):
        summary = RunDir(run_dir).summary
        if not summary.is_file():
            raise UserError(f"{run_dir} has no {summary.name} (not a run directory, or no iteration finished)")
        table, plot = report(run_dir)
        page = unless_read_only(lambda: write_html_report(run_dir), run_dir)
    out_console.print(table)
    out_console.print(f"plot: {plot}   html: {page}")


@app.command("compare")
def compare_cmd(
    run_dirs: list[Path] = typer.Argument(..., help="two or more run directories"),
    plot: Path = typer.Option(Path("compare.png"), "--plot", help="where to write the overlaid accuracy curves"),
    debug: bool = typer.Option(False, "--debug", help="show tracebacks"),
) -> None:
    """One table and one plot (accuracy per iteration, overlaid) for several runs."""
    from selftaught.reporting.compare import compare_table, load_summaries, plot_compare

    with one_line_errors(debug):
        runs = load_summaries(run_dirs)
        path = plot_compare(runs, plot)
    out_console.print(compare_table(runs))
    out_console.print(f"plot: {path}")
