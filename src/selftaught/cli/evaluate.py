"""``selftaught eval`` (score a model on a task) and ``selftaught grade`` (grade completions you have)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from selftaught.cli.root import UserError, app, err_console, one_line_errors, out_console
from selftaught.config import load_config


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
    from selftaught.common.atomic import atomic_write_text
    from selftaught.common.ui import quiet_libraries

    quiet_libraries()
    with one_line_errors(debug):
        result = _evaluate(model, recipe, overrides, iteration, samples, temperature, split, verifier, few_shot)
        if json_out:
            atomic_write_text(json_out, json.dumps(result, indent=2) + "\n")
    out_console.print_json(data=result)


def _evaluate(model, recipe, overrides, iteration, samples, temperature, split, verifier, few_shot) -> dict:
    from selftaught.common.ui import Reporter
    from selftaught.evaluate import eval_config, evaluate_model, resolve_model
    from selftaught.tasks import make_task
    from selftaught.training.base_model import ensure_base_model

    config = eval_config(model, recipe, overrides)  # a run directory brings its own task and model settings
    if samples > 1 and temperature <= 0:
        raise UserError("--samples > 1 needs --temperature > 0")
    if model == "embedded":
        path = str(ensure_base_model(config, make_task(config), Reporter(err_console)))
    else:
        path = resolve_model(model, config, iteration)
    if few_shot is None:  # M0 always gets the prefix; a run's fine-tuned checkpoints as the run prompts them
        few_shot = config.loop.few_shot_for_trained or not _is_step_checkpoint(Path(path))
    if verifier is not None:  # V-STaR's best of k (selftaught.verifier)
        from selftaught.verifier.bestofk import evaluate_best_of_k

        return evaluate_best_of_k(config, path, verifier, samples, temperature, split, few_shot)
    return evaluate_model(config, path, samples, temperature, split, few_shot)


def _is_step_checkpoint(path: Path) -> bool:
    """Whether ``path`` is where a run's step keeps its fine-tuned model (``iter_NNN``'s checkpoint)."""
    from selftaught.rundir.layout import StepDir

    return path == StepDir(path.parent).checkpoint


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
    from selftaught.common.atomic import atomic_write_jsonl
    from selftaught.grading import grade_file

    with one_line_errors(debug):
        config = load_config(recipe, [*overrides, f"task.name={task}"])
        rows, counts = grade_file(config, path, completion_field, raw)
        out = out or Path(path).with_suffix(".graded.jsonl")
        atomic_write_jsonl(out, rows)
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
