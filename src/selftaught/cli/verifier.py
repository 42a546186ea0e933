"""``selftaught verifier train RUN``: V-STaR's verifier for a finished (or interrupted) run.

Registered on the main app by `register` (cli.py passes its error handling in: one line, exit 2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer, fail, user_errors: tuple, out_console) -> None:
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
        from rich.console import Console

        from selftaught.common.ui import Reporter, quiet_libraries
        from selftaught.rundir.interrupts import stop_signals

        quiet_libraries()
        err_console = Console(stderr=True)
        again = f"selftaught verifier train {run_dir}" + "".join(f" --set {o}" for o in overrides)
        again += f" --out {out}" if out is not None else ""
        try:
            with stop_signals(again, lambda line: err_console.print(line, highlight=False)):
                metrics = _train(run_dir, overrides, out, Reporter(err_console, enabled=not quiet))
        except user_errors as err:
            fail(err, debug)
        folder = out or run_dir / "verifier"
        out_console.print(
            f"verifier: {metrics['num_pairs']} pairs over {metrics['num_questions']} questions "
            f"(iterations {metrics['iterations']}), from {metrics['init']} -> {folder / 'checkpoint'}",
            highlight=False,
            soft_wrap=True,
        )


def _train(run_dir: Path, overrides: list[str], out: Path | None, reporter) -> dict:
    from selftaught.rundir import is_run_dir, prepare_run_dir, release_run_dir
    from selftaught.verifier.train import train_verifier, with_verifier_overrides

    if not is_run_dir(run_dir):
        raise FileNotFoundError(f"{run_dir}/config.yaml does not exist: {run_dir} is not a run directory")
    config, run = prepare_run_dir(None, run_dir, resume=True)  # the run's lock: no loop writes it meanwhile
    try:
        return train_verifier(with_verifier_overrides(config, overrides), run_dir, out, reporter)
    finally:
        release_run_dir(run)
