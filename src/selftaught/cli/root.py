"""The typer app every command registers on, its consoles, and the one error wrapper they all use.

(Named ``root``, not ``app``: a submodule named like the `app` object it defines would shadow it on
the package, and ``from selftaught.cli import app`` must give the Typer app.)
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
import typer
from rich.console import Console

from selftaught.config import ConfigError
from selftaught.loop import StarError
from selftaught.rundir import RunInUse
from selftaught.rundir.interrupts import write_failure

# plain (click) help: flags read `--quiet`, not `--quiet <bool>`, and piped help does not wrap in boxes
app = typer.Typer(
    add_completion=False, no_args_is_help=True, rich_markup_mode=None, help="STaR: self-taught reasoning for HF models."
)
err_console = Console(stderr=True)
out_console = Console()


class UserError(Exception):
    """Anything the user can fix: printed as one line, exit code 2."""


USER_ERRORS = (ConfigError, UserError, FileNotFoundError, PermissionError, ValueError, StarError, RunInUse)


def _show_version(value: bool) -> None:
    if value:
        from selftaught.common.versions import version_line

        print(version_line())
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_show_version, is_eager=True, help="print selftaught's and its libraries' versions"
    ),
) -> None:
    """STaR: self-taught reasoning for HF models."""


def fail(err: BaseException, debug: bool, message: str | None = None) -> None:
    """One red ``error:`` line on stderr (``err``'s first line, or ``message``), then exit code 2."""
    if debug:
        traceback.print_exception(err)
    if message is None:  # never echo megabytes
        message = str(err).splitlines()[0][:1000] if str(err) else type(err).__name__
    err_console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


@contextmanager
def one_line_errors(debug: bool, run_dir: Path | None = None) -> Iterator[None]:
    """What a command does on a problem the user can fix: `USER_ERRORS`, and failed writes (full disk,
    read-only filesystem; ``run_dir`` names the run to resume), become one line and exit code 2, with the
    traceback under ``--debug``. Anything else is a bug and keeps its traceback."""
    try:
        yield
    except USER_ERRORS as err:
        fail(err, debug)
    except click.exceptions.Exit:  # typer.Exit is a RuntimeError: a command's own exit code passes through
        raise
    except Exception as err:
        message = write_failure(err, run_dir)
        if message is None:
            raise
        fail(err, debug, message)


def main() -> None:
    """The ``selftaught`` command (pyproject's entry point) and ``python -m selftaught.cli``."""
    for stream in (sys.stdout, sys.stderr):  # a path with non-UTF-8 bytes is printed, not a crash
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    try:
        app()
    except KeyboardInterrupt:
        err_console.print("interrupted: resume with `selftaught run --resume DIR`")
        sys.exit(130)
