"""The run directory: every file written atomically, every finished phase recorded.

Layout::

    RUN/config.yaml              resolved config, with the sha256 of its content (see `runconfig`)
    RUN/run.lock                 flock held by the live process; PID and host for information
    RUN/base/metrics.json        evaluation of the starting model M0
    RUN/iter_001/generated.jsonl every sample: id, hinted, text, answer, correct, verified, problem
    RUN/iter_001/train.jsonl     what was trained on: id, prompt (never hinted), completion, source
    RUN/iter_001/metrics.json    accuracy, accuracy_by_bucket, counts, steps, seconds per phase
    RUN/iter_001/checkpoint/     the fine-tuned model (HF format)
    RUN/iter_001/phases.json     phases finished so far, with their seconds
    RUN/iter_001/memory.json     peak resident MiB of each phase (Linux; see `memory`)
    RUN/summary.json             one row per finished iteration
    RUN/accuracy.png             accuracy by bucket across iterations

A file appears under its final name only once complete (write to a temporary name, fsync, rename),
so after a crash each file is either whole or absent, and ``phases.json`` says what to redo.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from selftaught.common.atomic import atomic_write_json
from selftaught.common.memory import peak_rss_mib, reset_peak_rss
from selftaught.rundir.files import _numbers_by_phase, check_metrics, read_json, refuse_symlinks, remove_scratch


class RunDir:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def iteration(self, n: int) -> Path:
        return self.root / f"iter_{n:03d}"

    @property
    def base(self) -> Path:
        return self.root / "base"

    def phases(self, folder: Path) -> dict:
        """Seconds of each finished phase (phases.json); {} when none finished."""
        return _numbers_by_phase(folder / "phases.json", "seconds")

    def peak_memory(self, folder: Path) -> dict:
        """Peak resident MiB of each phase that recorded one (memory.json); {} when none did."""
        return _numbers_by_phase(folder / "memory.json", "MiB")

    def metrics(self, folder: Path) -> dict:
        return check_metrics(read_json(folder / "metrics.json"), folder / "metrics.json")

    def is_done(self, folder: Path, phase: str) -> bool:
        return phase in self.phases(folder)

    def mark_done(self, folder: Path, phase: str, seconds: float) -> None:
        phases = self.phases(folder)
        phases[phase] = round(seconds, 3)
        atomic_write_json(folder / "phases.json", phases)

    def scratch(self, folder: Path, phase: str) -> Path:
        """Where ``phase`` keeps its resumable partial work (chunks, Trainer checkpoints); no links allowed."""
        path = folder / ".trainer" if phase == "train" else folder / ".chunks" / phase
        refuse_symlinks(self.root, path)  # a linked scratch folder would be read, then deleted
        return path

    def phase(self, folder: Path, name: str, work: Callable[[], None]) -> None:
        """Run ``work()`` unless ``name`` is already recorded as done in ``folder``; then record its
        seconds and drop its scratch folder. A kill inside ``work`` leaves the scratch for the resume."""
        if self.is_done(folder, name):
            return
        start, measured = time.perf_counter(), reset_peak_rss()
        work()
        peak = peak_rss_mib() if measured else None
        if peak is not None:  # before mark_done: a phase done is a phase whose peak is known, if knowable
            atomic_write_json(folder / "memory.json", {**self.peak_memory(folder), name: peak})
        self.mark_done(folder, name, time.perf_counter() - start)
        remove_scratch(self.root, self.scratch(folder, name))
        chunks = folder / ".chunks"
        if chunks.is_dir() and not chunks.is_symlink() and not any(chunks.iterdir()):
            chunks.rmdir()

    def finished_iterations(self) -> list[int]:
        done = []
        for folder in sorted(self.root.glob("iter_[0-9][0-9][0-9]")):
            if (folder / "metrics.json").is_file() and self.is_done(folder, "evaluate"):
                done.append(int(folder.name.split("_")[1]))
        return done

    def write_summary(self, extra: dict) -> dict:
        rows = [self.metrics(self.iteration(n)) for n in self.finished_iterations()]
        summary = {**extra, "iterations": rows}
        atomic_write_json(self.root / "summary.json", summary)
        return summary
