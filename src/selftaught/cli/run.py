"""``selftaught run``: a STaR run, or the resumption of one."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from selftaught.cli.root import app, err_console, one_line_errors, out_console
from selftaught.config import load_config
from selftaught.rundir import is_run_dir
from selftaught.rundir.interrupts import stop_signals


@app.command()
def run(
    recipe: Optional[Path] = typer.Argument(None, help="YAML recipe; none = the default arithmetic run"),
    out: Optional[Path] = typer.Option(None, "--out", help="run directory (default runs/<recipe name>)"),
    overrides: list[str] = typer.Option(
        [], "--set", metavar="KEY=VALUE", help="dotted override, e.g. --set loop.iterations=3"
    ),
    resume: Optional[Path] = typer.Option(None, "--resume", help="continue the run in this directory"),
    force: bool = typer.Option(False, "--force", help="with --resume: accept a changed config"),
    quiet: bool = typer.Option(False, "--quiet", help="no progress bars"),
    debug: bool = typer.Option(False, "--debug", help="show tracebacks"),
) -> None:
    """Run STaR (or resume a run) and print the per-iteration table."""
    from selftaught.common.ui import Reporter, quiet_libraries
    from selftaught.loop import run_star
    from selftaught.reporting.table import report

    quiet_libraries()
    out_dir = resume or out or Path("runs") / (recipe.stem if recipe else "default")
    # a failed write (disk full, quota, I/O error) is one line too: finished phases are safe on disk
    with one_line_errors(debug, out_dir):
        # Ctrl-C and SIGTERM: one line with the resume command, exit 128 + signal
        with stop_signals(_resume_command(out_dir), lambda line: err_console.print(line, highlight=False)):
            if resume is not None:
                config = _resume_config(resume, recipe, overrides)
            else:
                config = load_config(recipe, overrides)
            reporter = Reporter(err_console, enabled=not quiet)
            if not run_star(config, out_dir, resume=resume is not None, reporter=reporter, force=force):
                return  # a training rank > 0 of the user's own multi-process launch: rank 0 reports
            table, plot = report(out_dir)
    out_console.print(table)
    out_console.print(f"run directory: {out_dir}   plot: {plot}")


def _resume_config(run_dir: Path, recipe: Optional[Path], overrides: list[str]):
    """None (use the saved config) unless a recipe or overrides ask for changes: overrides apply on top
    of the saved config, a recipe replaces it."""
    from selftaught.config import apply_override, config_from_dict, read_recipe
    from selftaught.rundir import load_saved_config

    if recipe is None and not overrides:
        return None
    data = read_recipe(recipe) if recipe else load_saved_config(run_dir)
    for assignment in overrides:
        apply_override(data, assignment)
    return config_from_dict(data)


def _resume_command(out_dir: Path):
    """What to type after an interrupt: resume once the run directory holds a config, else start again."""
    return lambda: f"selftaught run --resume {out_dir}" if is_run_dir(out_dir) else "the same command again"
