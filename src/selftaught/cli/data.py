"""``selftaught data validate``: check a dataset before a long run."""

from __future__ import annotations

import json

import typer

from selftaught.cli.root import app, one_line_errors, out_console
from selftaught.config import load_config

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
    from selftaught.tasks.validate import validate_dataset

    with one_line_errors(debug):
        config = load_config(None, [f"task.name={task}", *overrides])
        report = validate_dataset(config, path)
    if not report["valid"] and not report["invalid"]:
        report["problems"].append(f"{path}: no rows (empty file?)")
    if as_json:
        print(json.dumps(report))
    else:
        _print_report(path, report)
    if report["invalid"] or not report["valid"]:
        raise typer.Exit(1)


def _print_report(path: str, report: dict) -> None:
    out_console.print(f"{path}: [green]{report['valid']} valid[/green], [red]{report['invalid']} invalid[/red]")
    for line in report["problems"][:50]:
        print(f"  {line}")  # plain print: a piped line is never wrapped
    for key, value in report.items():
        if key not in ("valid", "invalid", "problems") and not isinstance(value, list):
            out_console.print(f"  {key}: {value}")
