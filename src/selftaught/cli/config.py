"""``selftaught config [PREFIX]``: every setting a recipe or ``--set`` takes, with its type, default and help."""

from __future__ import annotations

import difflib
import shutil
import textwrap
from typing import Optional

import typer

from selftaught.cli.root import UserError, app, one_line_errors
from selftaught.common.bounded import shown
from selftaught.config import FieldHelp, describe_fields


@app.command("config")
def config_cmd(
    prefix: Optional[str] = typer.Argument(None, help="only the keys starting with this, e.g. train or model.lora"),
    debug: bool = typer.Option(False, "--debug", help="show tracebacks"),
) -> None:
    """List the config's settings: dotted key (for recipes and --set), type, default and what it does."""
    with one_line_errors(debug):
        fields = matching(describe_fields(), prefix or "")
    width = max(40, shutil.get_terminal_size((80, 24)).columns)  # COLUMNS, else the terminal's, else 80
    print("\n".join(render(fields, width)))


def matching(fields: list[FieldHelp], prefix: str) -> list[FieldHelp]:
    """The fields whose key starts with ``prefix``; none is one `UserError` naming the closest key."""
    found = [f for f in fields if f.key.startswith(prefix)]
    if found:
        return found
    names = sorted({f.key for f in fields} | {f.key.rsplit(".", 1)[0] for f in fields if "." in f.key})
    close = difflib.get_close_matches(prefix, names, n=1) if len(prefix) <= 100 else []
    hint = f"did you mean {close[0]!r}?" if close else "sections: " + ", ".join(_sections(fields))
    raise UserError(f"no config key starts with {shown(prefix)}; {hint}")


def _sections(fields: list[FieldHelp]) -> list[str]:
    return list(dict.fromkeys(f.key.split(".")[0] for f in fields))


def render(fields: list[FieldHelp], width: int) -> list[str]:
    """``key  type = default`` lines, each with its help wrapped below it (nothing cut); a blank line
    between sections."""
    lines: list[str] = []
    section = None
    for f in fields:
        where = f.key.rsplit(".", 1)[0] if "." in f.key else ""
        if lines and where != section:
            lines.append("")
        section = where
        lines.append(f"{f.key}  {f.type} = {f.shown_default}")
        lines += textwrap.wrap(
            f.help,
            width,
            initial_indent="    ",
            subsequent_indent="    ",
            break_long_words=False,
            break_on_hyphens=False,
        )
    return lines
