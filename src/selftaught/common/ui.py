"""Progress bars (rich) with ETA per phase; a silent variant for tests and library use."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class Reporter:
    def __init__(self, console: Console | None = None, enabled: bool = True):
        self.console = console or Console(stderr=True)
        self.enabled = enabled

    @contextmanager
    def phase(self, description: str, total: int) -> Iterator[Callable[[int], None]]:
        """Yields ``advance(n)``; draws a bar with elapsed time and ETA while the phase runs."""
        if not self.enabled:
            yield lambda n=1: None
            return
        columns = (
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=self.console, transient=False) as progress:
            task_id = progress.add_task(description, total=total)
            yield lambda n=1: progress.advance(task_id, n)

    def log(self, message: str) -> None:
        if self.enabled:
            self.console.print(message)


SILENT = Reporter(enabled=False)


def quiet_libraries() -> None:
    """Turn off transformers' and huggingface_hub's own bars ("Loading weights", "Writing model shards",
    downloads): they would interleave with ours, and --quiet means no bars at all."""
    import huggingface_hub.utils
    import transformers.utils.logging

    transformers.utils.logging.disable_progress_bar()
    huggingface_hub.utils.disable_progress_bars()
