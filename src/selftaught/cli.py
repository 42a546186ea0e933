"""Command line: ``selftaught run | report``."""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from selftaught.config import ConfigError, load_config

app = typer.Typer(add_completion=False, no_args_is_help=True, help="STaR: self-taught reasoning for HF models.")
err_console = Console(stderr=True)
out_console = Console()


class UserError(Exception):
    """Anything the user can fix: printed as one line, exit code 2."""


def _fail(err: BaseException, debug: bool) -> None:
    if debug:
        traceback.print_exception(err)
    message = str(err).splitlines()[0] if str(err) else type(err).__name__
    err_console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


USER_ERRORS = (ConfigError, UserError, FileNotFoundError, PermissionError, ValueError)


@app.command()
def run(
    recipe: Optional[Path] = typer.Argument(None, help="YAML recipe; none = the default arithmetic run"),
    out: Optional[Path] = typer.Option(None, "--out", help="run directory (default runs/<recipe name>)"),
    overrides: list[str] = typer.Option([], "--set", help="dotted override, e.g. --set loop.iterations=3"),
    resume: Optional[Path] = typer.Option(None, "--resume", help="continue the run in this directory"),
    quiet: bool = typer.Option(False, "--quiet", help="no progress bars"),
    debug: bool = typer.Option(False, "--debug", help="show tracebacks"),
) -> None:
    """Run STaR (or resume a run) and print the per-iteration table."""
    from selftaught.loop import run_star
    from selftaught.report import report
    from selftaught.ui import Reporter

    try:
        if resume is not None:
            if recipe is not None or overrides:
                raise UserError("--resume takes the run's saved config; drop the recipe and --set")
            config, out_dir = None, resume
        else:
            config = load_config(recipe, overrides)
            out_dir = out or Path("runs") / (recipe.stem if recipe else "default")
        summary_dir = out_dir
        run_star(config, out_dir, resume=resume is not None, reporter=Reporter(err_console, enabled=not quiet))
        table, plot = report(summary_dir)
    except USER_ERRORS as err:
        _fail(err, debug)
    out_console.print(table)
    out_console.print(f"run directory: {summary_dir}   plot: {plot}")


@app.command("report")
def report_cmd(run_dir: Path = typer.Argument(..., help="a run directory"), debug: bool = False) -> None:
    """Print a run's table and (re)draw its accuracy plot."""
    from selftaught.report import report

    try:
        if not (run_dir / "summary.json").is_file():
            raise UserError(f"{run_dir} has no summary.json (not a run directory, or no iteration finished)")
        table, plot = report(run_dir)
    except USER_ERRORS as err:
        _fail(err, debug)
    out_console.print(table)
    out_console.print(f"plot: {plot}")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err_console.print("interrupted: resume with `selftaught run --resume DIR`")
        sys.exit(130)


if __name__ == "__main__":
    main()
