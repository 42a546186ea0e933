"""``selftaught verifier train RUN``: V-STaR's verifier for a finished (or interrupted) run."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from selftaught.cli.root import app, err_console, one_line_errors, out_console
from selftaught.rundir.interrupts import stop_signals

verifier_app = typer.Typer(help="V-STaR: a verifier trained on a run's own right and wrong samples.")
app.add_typer(verifier_app, name="verifier")


@verifier_app.command("train")
def train_cmd(
    run_dir: Path = typer.Argument(..., help="a run directory (generation.num_samples > 1)"),
    overrides: list[str] = typer.Option(
        [], "--set", metavar="KEY=VALUE", help="verifier settings, e.g. --set verifier.iterations=2"
    ),
    out: Optional[Path] = typer.Option(None, "--out", help="where to write it (default RUN/verifier)"),
    quiet: bool = typer.Option(False, "--quiet", help="no progress bars"),
    debug: bool = typer.Option(False, "--debug", help="show tracebacks"),
) -> None:
    """Train the verifier with DPO (TRL) into RUN/verifier/checkpoint; resumes an interrupted one."""
    from selftaught.common.ui import Reporter, quiet_libraries
    from selftaught.rundir import RunDir
    from selftaught.rundir.layout import StepDir

    quiet_libraries()
    again = f"selftaught verifier train {run_dir}" + "".join(f" --set {o}" for o in overrides)
    again += f" --out {out}" if out is not None else ""
    with one_line_errors(debug):
        with stop_signals(again, lambda line: err_console.print(line, highlight=False)):
            metrics = _train(run_dir, overrides, out, Reporter(err_console, enabled=not quiet))
    folder = StepDir(out) if out is not None else RunDir(run_dir).verifier
    out_console.print(
        f"verifier: {metrics['num_pairs']} pairs over {metrics['num_questions']} questions "
        f"(iterations {metrics['iterations']}), from {metrics['init']} -> {folder.checkpoint}",
        highlight=False,
        soft_wrap=True,
    )


def _train(run_dir: Path, overrides: list[str], out: Path | None, reporter) -> dict:
    from selftaught.rundir import RunDir, is_run_dir, prepare_run_dir, release_run_dir
    from selftaught.verifier.train import train_verifier, with_verifier_overrides

    if not is_run_dir(run_dir):
        raise FileNotFoundError(f"{RunDir(run_dir).config} does not exist: {run_dir} is not a run directory")
    config, run = prepare_run_dir(None, run_dir, resume=True)  # the run's lock: no loop writes it meanwhile
    try:
        return train_verifier(with_verifier_overrides(config, overrides), run_dir, out, reporter)
    finally:
        release_run_dir(run)
