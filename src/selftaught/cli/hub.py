"""Commands that hand a run to the Hugging Face Hub and other tools: ``export`` and ``push``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from selftaught.cli.root import app, one_line_errors, out_console


@app.command("export")
def export_cmd(
    run_dir: Path = typer.Argument(..., help="a run directory"),
    out: Path = typer.Option(..., "--out", help="folder to write the dataset and lm-eval task into"),
    iteration: Optional[int] = typer.Option(None, "--iteration", help="which iteration (default: the last)"),
    push_to_hub: Optional[str] = typer.Option(
        None, "--push-to-hub", metavar="REPO_ID", help="also upload the export as a Hub dataset repo"
    ),
    private: bool = typer.Option(False, "--private", help="with --push-to-hub: create a private repo"),
    debug: bool = typer.Option(False, "--debug", help="show tracebacks"),
) -> None:
    """Kept rationales as a `datasets` dataset with a card, and an lm-evaluation-harness task."""
    from datasets.utils.logging import disable_progress_bar

    from selftaught.common.ui import quiet_libraries
    from selftaught.hub.export import export_run, push_folder

    quiet_libraries()
    disable_progress_bar()  # "Saving the dataset" bars
    with one_line_errors(debug):
        done = export_run(run_dir, out, iteration)
        url = push_folder(out, push_to_hub, "dataset", private) if push_to_hub else None
    out_console.print(f"iteration {done['iteration']}: {done['rows']} rows -> {done['dataset']}")
    out_console.print(f"lm-eval task: {done['lm_eval']}  (lm_eval --include_path {done['lm_eval'].parent} ...)")
    if url:
        out_console.print(f"pushed: {url}")


@app.command("push")
def push_cmd(
    target: Path = typer.Argument(..., help="a run directory (its checkpoint) or a model folder"),
    repo_id: str = typer.Option(..., "--repo-id", help="Hub repo, e.g. you/model-name"),
    iteration: Optional[int] = typer.Option(None, "--iteration", help="with a run directory: which checkpoint"),
    private: bool = typer.Option(False, "--private", help="create a private repo"),
    debug: bool = typer.Option(False, "--debug", help="show tracebacks"),
) -> None:
    """Upload a checkpoint (with its model card) to the Hugging Face Hub."""
    from selftaught.hub.export import pick_iteration, push_folder
    from selftaught.rundir import RunDir, is_run_dir

    with one_line_errors(debug):
        folder = target
        if is_run_dir(target):
            folder = RunDir(target).iteration(pick_iteration(target, iteration)).checkpoint
        if not (folder / "config.json").is_file() and not (folder / "adapter_config.json").is_file():
            raise FileNotFoundError(f"{folder} is not a model folder (no config.json or adapter_config.json)")
        url = push_folder(folder, repo_id, "model", private)
    out_console.print(f"pushed {folder}: {url}")
