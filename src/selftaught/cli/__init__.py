"""Command line: ``selftaught run | report | eval | grade | compare | export | push | config |
data validate | verifier train``.

`root` holds the typer `app` and the one error wrapper; each module below registers its commands on
`app` when imported.
"""

from __future__ import annotations

from selftaught.cli import config, data, evaluate, hub, reports, run, verifier  # noqa: F401  (registers commands)
from selftaught.cli.root import app, main

# the order `selftaught --help` lists them in (groups, `data` and `verifier`, follow)
HELP_ORDER = ["run", "report", "eval", "grade", "compare", "export", "push", "config"]
app.registered_commands.sort(key=lambda command: HELP_ORDER.index(command.name or command.callback.__name__))

__all__ = ["app", "main"]
