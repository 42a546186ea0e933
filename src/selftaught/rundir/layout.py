"""The run directory: every file written atomically, every finished phase recorded.

Layout::

    RUN/config.yaml              resolved config, with the sha256 of its content (see `runconfig`)
    RUN/run.lock                 flock held by the live process; PID and host for information
    RUN/base/metrics.json        evaluation of the starting model M0
    RUN/iter_001/generated.jsonl every sample: id, hinted, text, answer, correct, verified, problem
    RUN/iter_001/train.jsonl     what was trained on: id, prompt (never hinted), completion, source
    RUN/iter_001/pairs.jsonl     train.objective=rpo: (kept, wrong) completions of the same question
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
from selftaught.rundir.files import damaged, read_json, refuse_symlinks, remove_scratch
from selftaught.rundir.lock import LOCK_FILE
from selftaught.rundir.metrics import IterationMetrics, Summary, finite_number

REWRITE = "resume the run (selftaught run --resume DIR) to rewrite it"


def _numbers_by_phase(path: Path, unit: str) -> dict:
    """A ``{phase: number}`` file, checked; {} when absent. A non-number is damage, named with its unit."""
    if not path.is_file():
        return {}
    values = read_json(path, dict)
    for name, value in values.items():
        if not finite_number(value):
            raise damaged(path, f"phase {name!r} has no number of {unit}")
    return values


# --------------------------------------------------------------------------------- links and scratch


class _File:
    """A named file or folder of a `RunDir` or `StepDir`: ``step.metrics_file`` is ``step / "metrics.json"``."""

    def __init__(self, name: str, doc: str):
        self.name, self.__doc__ = name, doc

    def __get__(self, step, owner=None) -> Path:
        return self if step is None else step / self.name


class StepDir(type(Path())):
    """A folder of the run that records its phases (``base``, ``iter_NNN``, ``verifier``): a `Path`
    whose files have names. Code outside this package asks for ``step.metrics_file``, never for a name."""

    generated = _File("generated.jsonl", "every sample of generate and rationalize (`samples.Sample` rows)")
    train_data = _File("train.jsonl", "what the iteration trained on (`samples.Record` rows, never hinted)")
    eval_samples = _File("eval.jsonl", "the evaluation's graded samples")
    metrics_file = _File("metrics.json", "the step's evaluation (`IterationMetrics`)")
    phases_file = _File("phases.json", "seconds of each finished phase")
    memory_file = _File("memory.json", "peak resident MiB of each phase")
    checkpoint = _File("checkpoint", "the fine-tuned model of this step (HF format, or a LoRA adapter)")
    train_log = _File("train_log.jsonl", "the Trainer's log rows (loss, learning rate)")
    logs = _File("logs", "TensorBoard's folder for the Trainer's logs")
    pairs = _File("pairs.jsonl", "(right, wrong) pairs (`samples.Pair`): the verifier's, or an rpo iteration's")
    settings = _File("settings.json", "what a finished verifier was made with, checked on resume")


class RunDir:
    """Every path of a run directory; `phase` runs a step's phase once and records it."""

    CONFIG = "config.yaml"
    LOCK = LOCK_FILE

    def __init__(self, root: str | Path):
        self.root = Path(root)

    config = _File(CONFIG, "the resolved config with its digest (see `saved_config`)")
    lock = _File(LOCK, "the live process's flock (see `lock`)")
    summary = _File("summary.json", "one row per finished iteration, and the base model's (`Summary`)")
    accuracy_plot = _File("accuracy.png", "accuracy per bucket across iterations")
    html_report = _File("report.html", "`selftaught report`'s page: tables, plots, sample rationales")
    logs = _File("logs", "TensorBoard's folder for STaR's per-iteration metrics")

    def __truediv__(self, name: str) -> Path:
        return self.root / name

    def iteration(self, n: int) -> StepDir:
        return StepDir(self.root / f"iter_{n:03d}")

    @property
    def base(self) -> StepDir:
        return StepDir(self.root / "base")

    @property
    def verifier(self) -> StepDir:
        return StepDir(self.root / "verifier")

    def iteration_folders(self) -> list[StepDir]:
        """Every ``iter_NNN`` folder present, finished or not, in order."""
        return [StepDir(p) for p in sorted(self.root.glob("iter_[0-9][0-9][0-9]"))]

    def phases(self, folder: Path) -> dict:
        """Seconds of each finished phase (phases.json); {} when none finished."""
        return _numbers_by_phase(StepDir(folder).phases_file, "seconds")

    def peak_memory(self, folder: Path) -> dict:
        """Peak resident MiB of each phase that recorded one (memory.json); {} when none did."""
        return _numbers_by_phase(StepDir(folder).memory_file, "MiB")

    def metrics(self, folder: Path) -> IterationMetrics:
        """The step's evaluation (``metrics.json``), checked."""
        path = StepDir(folder).metrics_file
        return IterationMetrics.from_json(read_json(path), path)

    def write_metrics(self, folder: Path, metrics: IterationMetrics) -> None:
        atomic_write_json(StepDir(folder).metrics_file, metrics.to_json())

    def read_summary(self, fix: str = REWRITE) -> Summary:
        """``summary.json``, checked: a damaged one is one line naming it and ``fix``."""
        return Summary.from_json(read_json(self.summary, dict, fix), self.summary, fix)

    def is_done(self, folder: Path, phase: str) -> bool:
        return phase in self.phases(folder)

    def mark_done(self, folder: Path, phase: str, seconds: float) -> None:
        phases = self.phases(folder)
        phases[phase] = round(seconds, 3)
        atomic_write_json(StepDir(folder).phases_file, phases)

    def trainer_scratch(self, folder: Path) -> Path:
        """The train phase's Trainer checkpoints (unchecked for links: `scratch` checks before use)."""
        return Path(folder) / ".trainer"

    def scratch(self, folder: Path, phase: str) -> Path:
        """Where ``phase`` keeps its resumable partial work (chunks, Trainer checkpoints); no links allowed."""
        path = self.trainer_scratch(folder) if phase == "train" else folder / ".chunks" / phase
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
            atomic_write_json(StepDir(folder).memory_file, {**self.peak_memory(folder), name: peak})
        self.mark_done(folder, name, time.perf_counter() - start)
        remove_scratch(self.root, self.scratch(folder, name))
        chunks = folder / ".chunks"
        if chunks.is_dir() and not chunks.is_symlink() and not any(chunks.iterdir()):
            chunks.rmdir()

    def finished_iterations(self) -> list[int]:
        done = []
        for folder in self.iteration_folders():
            if folder.metrics_file.is_file() and self.is_done(folder, "evaluate"):
                done.append(int(folder.name.split("_")[1]))
        return done

    def write_summary(self, summary: Summary) -> Summary:
        """Write ``summary`` with every finished iteration's metrics, as recorded on disk."""
        summary.iterations = [self.metrics(self.iteration(n)) for n in self.finished_iterations()]
        atomic_write_json(self.summary, summary.to_json())
        return summary


def chunk_file(chunks: Path, index: int) -> Path:
    """One finished chunk of a generation phase, inside that phase's scratch folder."""
    return Path(chunks) / f"chunk_{index:05d}.jsonl"


def trainer_layout_file(scratch: Path) -> Path:
    """The process layout that wrote the Trainer checkpoints in ``scratch`` (they resume only on it)."""
    return Path(scratch) / "layout.json"


def train_processes_log(logs: Path) -> Path:
    """The output of training processes that selftaught launched."""
    return Path(logs) / "train_processes.log"
