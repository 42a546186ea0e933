"""Command line: ``selftaught run | eval | grade | report | data validate``."""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from selftaught.config import ConfigError, load_config
from selftaught.loop import StarError
from selftaught.rundir import RunInUse
from selftaught.rundir.interrupts import stop_signals, write_failure

# plain (click) help: flags read `--quiet`, not `--quiet <bool>`, and piped help does not wrap in boxes
app = typer.Typer(
    add_completion=False, no_args_is_help=True, rich_markup_mode=None, help="STaR: self-taught reasoning for HF models."
)
err_console = Console(stderr=True)
out_console = Console()


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


class UserError(Exception):
    """Anything the user can fix: printed as one line, exit code 2."""


def _fail(err: BaseException, debug: bool) -> None:
    if debug:
        traceback.print_exception(err)
    message = str(err).splitlines()[0][:1000] if str(err) else type(err).__name__  # never echo megabytes
    err_console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


USER_ERRORS = (ConfigError, UserError, FileNotFoundError, PermissionError, ValueError, StarError, RunInUse)


def _fail_write(err: Exception, run_dir, debug: bool) -> None:
    """A failed write (full disk, read-only filesystem) as one line; anything else is a bug: re-raised."""
    message = write_failure(err, run_dir)
    if message is None:
        raise err
    _fail(UserError(message), debug)


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
    return lambda: (
        f"selftaught run --resume {out_dir}" if (out_dir / "config.yaml").is_file() else "the same command again"
    )


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
    try:
        # Ctrl-C and SIGTERM: one line with the resume command, exit 128 + signal
        with stop_signals(_resume_command(out_dir), lambda line: err_console.print(line, highlight=False)):
            if resume is not None:
                config = _resume_config(resume, recipe, overrides)
            else:
                config = load_config(recipe, overrides)
            summary_dir = out_dir
            reporter = Reporter(err_console, enabled=not quiet)
            if not run_star(config, out_dir, resume=resume is not None, reporter=reporter, force=force):
                return  # a training rank > 0 of the user's own multi-process launch: rank 0 reports
            table, plot = report(summary_dir)
    except USER_ERRORS as err:
        _fail(err, debug)
    except Exception as err:  # disk full, quota, I/O error: finished phases are safe on disk
        _fail_write(err, out_dir, debug)
    out_console.print(table)
    out_console.print(f"run directory: {summary_dir}   plot: {plot}")


@app.command("report")
def report_cmd(
    run_dir: Path = typer.Argument(..., help="a run directory"),
    debug: bool = typer.Option(False, "--debug", help="show tracebacks"),
) -> None:
    """Print a run's table, (re)draw its accuracy plot and write report.html (with samples of rationales)."""
    from selftaught.reporting.html import write_html_report
    from selftaught.reporting.table import report, unless_read_only

    try:
        if not (run_dir / "summary.json").is_file():
            raise UserError(f"{run_dir} has no summary.json (not a run directory, or no iteration finished)")
        table, plot = report(run_dir)
        page = unless_read_only(lambda: write_html_report(run_dir), run_dir)
    except USER_ERRORS as err:
        _fail(err, debug)
    except Exception as err:
        _fail_write(err, None, debug)
    out_console.print(table)
    out_console.print(f"plot: {plot}   html: {page}")


@app.command("eval")
def eval_cmd(
    model: str = typer.Argument(..., help="model folder, hub id, run directory, or 'embedded'"),
    recipe: Optional[Path] = typer.Option(
        None, "--recipe", help="task and model settings (default: a run directory's own)"
    ),
    overrides: list[str] = typer.Option(
        [], "--set", metavar="KEY=VALUE", help="dotted override, e.g. --set task.name=gsm8k"
    ),
    iteration: Optional[int] = typer.Option(None, "--iteration", help="with a run directory: which checkpoint"),
    samples: int = typer.Option(1, "--samples", help="k samples per question for maj@k and pass@k"),
    temperature: float = typer.Option(0.7, "--temperature", help="sampling temperature for --samples > 1"),
    split: str = typer.Option("test", "--split", help="which split of the task to score"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="also write the result here"),
    verifier: Optional[Path] = typer.Option(
        None, "--verifier", help="a verifier checkpoint (or a run with one): Verifier@k beside maj@k, pass@k"
    ),
    few_shot: Optional[bool] = typer.Option(
        None,
        "--few-shot/--no-few-shot",
        help="prompt with the task's few-shot prefix (default: yes, but a run's fine-tuned checkpoint as the run"
        " prompts it, see loop.few_shot_for_trained)",
    ),
    debug: bool = typer.Option(False, "--debug", help="show tracebacks"),
) -> None:
    """Score a model on a task's test split: greedy accuracy per bucket, maj@k, pass@k (with --verifier:
    pass@1, maj@k, pass@k and Verifier@k for k = 1, 2, 4, ..., --samples)."""
    import json

    from selftaught.common.atomic import atomic_write_text
    from selftaught.common.ui import Reporter, quiet_libraries
    from selftaught.evaluate import eval_config, evaluate_model, resolve_model
    from selftaught.tasks import make_task
    from selftaught.training.base_model import ensure_base_model

    quiet_libraries()
    try:
        config = eval_config(model, recipe, overrides)  # a run directory brings its own task and model settings
        if samples > 1 and temperature <= 0:
            raise UserError("--samples > 1 needs --temperature > 0")
        if model == "embedded":
            path = str(ensure_base_model(config, make_task(config), Reporter(err_console)))
        else:
            path = resolve_model(model, config, iteration)
        if few_shot is None:  # iteration checkpoints live at iter_NNN/checkpoint; M0 always gets the prefix
            few_shot = config.loop.few_shot_for_trained or Path(path).name != "checkpoint"
        if verifier is not None:  # V-STaR's best of k (selftaught.verifier)
            from selftaught.verifier.bestofk import evaluate_best_of_k

            result = evaluate_best_of_k(config, path, verifier, samples, temperature, split, few_shot)
        else:
            result = evaluate_model(config, path, samples, temperature, split, few_shot)
        if json_out:
            atomic_write_text(json_out, json.dumps(result, indent=2) + "\n")
    except USER_ERRORS as err:
        _fail(err, debug)
    except Exception as err:
        _fail_write(err, None, debug)
    out_console.print_json(data=result)


@app.command("grade")
def grade_cmd(
    task: str = typer.Option(..., "--task", help="gsm8k | commonsenseqa | jsonl | package.module:Class"),
    path: str = typer.Option(..., "--path", help="rows in the task's data format plus a completion field"),
    recipe: Optional[Path] = typer.Option(None, "--recipe", help="recipe giving the task settings"),
    overrides: list[str] = typer.Option([], "--set", help="dotted override, e.g. --set task.data.normalizer=number"),
    completion_field: str = typer.Option("completion", "--completion-field", help="the field holding the output"),
    out: Optional[Path] = typer.Option(None, "--out", help="graded rows (JSONL; default FILE.graded.jsonl)"),
    raw: bool = typer.Option(False, "--raw", help="grade whole texts, not cut where completions end (chat models)"),
    as_json: bool = typer.Option(False, "--json", help="print the counts as one JSON object"),
    debug: bool = typer.Option(False, "--debug", help="show tracebacks"),
) -> None:
    """Grade completions you already have with a task's grader: one JSONL row per input, in order."""
    import json

    from selftaught.common.atomic import atomic_write_jsonl
    from selftaught.grading import grade_file

    try:
        config = load_config(recipe, [*overrides, f"task.name={task}"])
        rows, counts = grade_file(config, path, completion_field, raw)
        out = out or Path(path).with_suffix(".graded.jsonl")
        atomic_write_jsonl(out, rows)
    except USER_ERRORS as err:
        _fail(err, debug)
    if as_json:
        print(json.dumps({**counts.as_dict(), "out": str(out)}))
        return
    n = max(counts.rows, 1)
    out_console.print(
        f"{path}: {counts.rows} rows, [green]{counts.correct} correct[/green] ({counts.correct / n:.1%}), "
        f"{counts.verified} verified ({counts.verified / n:.1%}), {counts.no_answer} no answer; rows: {out}",
        highlight=False,
        soft_wrap=True,
    )


data_app = typer.Typer(help="Check datasets before a long run.")
app.add_typer(data_app, name="data")


@data_app.command("validate")
def data_validate(
    task: str = typer.Option(..., "--task", help="gsm8k | commonsenseqa | jsonl"),
    path: str = typer.Option(..., "--path", help="dataset file (or datasets id for jsonl)"),
    overrides: list[str] = typer.Option(
        [], "--set", metavar="KEY=VALUE", help="e.g. --set task.data.question_field=prompt"
    ),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object (exit code as without --json)"),
    debug: bool = typer.Option(False, "--debug", help="show tracebacks"),
) -> None:
    """Count valid and invalid rows, with file:line reasons; exit 1 when a row is invalid or there is none."""
    import json

    from selftaught.tasks.validate import validate_dataset

    try:
        config = load_config(None, [f"task.name={task}", *overrides])
        report = validate_dataset(config, path)
    except USER_ERRORS as err:
        _fail(err, debug)
    if not report["valid"] and not report["invalid"]:
        report["problems"].append(f"{path}: no rows (empty file?)")
    if as_json:
        print(json.dumps(report))
    else:
        out_console.print(f"{path}: [green]{report['valid']} valid[/green], [red]{report['invalid']} invalid[/red]")
        for line in report["problems"][:50]:
            print(f"  {line}")  # plain print: a piped line is never wrapped
        for key, value in report.items():
            if key not in ("valid", "invalid", "problems") and not isinstance(value, list):
                out_console.print(f"  {key}: {value}")
    if report["invalid"] or not report["valid"]:
        raise typer.Exit(1)


def _register_more() -> None:
    from selftaught.cli.more import register

    register(app, _fail, USER_ERRORS, out_console)
    from selftaught.cli.verifier import register as register_verifier

    register_verifier(app, _fail, USER_ERRORS, out_console)


_register_more()


def main() -> None:
    for stream in (sys.stdout, sys.stderr):  # a path with non-UTF-8 bytes is printed, not a crash
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    try:
        app()
    except KeyboardInterrupt:
        err_console.print("interrupted: resume with `selftaught run --resume DIR`")
        sys.exit(130)

