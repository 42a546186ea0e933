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

Nothing inside a run directory may be a symbolic link: resume deletes scratch folders and the
Trainer rotates checkpoints, and through a link either would delete files elsewhere. Links are
refused, never followed. A file that is whole but wrong (edited, truncated, damaged on disk) is
reported as one `RunDirError` naming it, never as a traceback.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from selftaught.bounded import printable
from selftaught.memory import peak_rss_mib, reset_peak_rss
from selftaught.runlock import RunInUse, RunLock  # noqa: F401  (the lock is part of the run directory's API)

MAX_JSON_BYTES = 64 << 20  # metrics, phases, summary: kilobytes; a bigger file is damage
MAX_JSONL_LINE_BYTES = 16 << 20  # one generated row (a rationale), one training record


class RunDirError(ValueError):
    """The run directory cannot be used as it is; the message names the path and what to do."""


def damaged(path: Path, problem: str, fix: str = "") -> RunDirError:
    fix = fix or f"restore the file, or delete {printable(str(path.parent))} to redo that step"
    return RunDirError(f"{printable(str(path))}: {problem}; the run directory is damaged: {fix}")


# --------------------------------------------------------------------------------- atomic writes
def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


UMASK = _current_umask()  # read once: os.umask can only be read by setting it, which is not thread-safe


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(fd, 0o666 & ~UMASK)  # mkstemp makes 0600; a shared run follows the umask like any file
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)  # replaces a link at ``path`` itself, never writes through it
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_write_jsonl(path: str | Path, rows: list[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def atomic_save_dir(path: str | Path, write) -> None:
    """Call ``write(tmp_dir)`` then move the finished folder to ``path`` (replacing any old one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        tmp.chmod(0o777 & ~UMASK)  # mkdtemp makes 0700
        write(tmp)
        if path.is_symlink():
            raise RunDirError(f"{printable(str(path))} is a symbolic link; refusing to replace what it points to")
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# --------------------------------------------------------------------------------- checked reads
def read_json(path: str | Path, kind: type | None = None, fix: str = ""):
    """The JSON value in ``path``; a missing, oversized, non-UTF-8 or malformed file is a `RunDirError`."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_JSON_BYTES + 1)
    except FileNotFoundError:
        raise damaged(path, "missing", fix) from None
    except IsADirectoryError:
        raise damaged(path, "is a folder, not a file", fix) from None
    if len(raw) > MAX_JSON_BYTES:
        raise damaged(path, f"larger than {MAX_JSON_BYTES >> 20} MiB", fix)
    try:
        value = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise damaged(path, f"not UTF-8 (byte {err.start})", fix) from None
    except json.JSONDecodeError as err:
        raise damaged(path, f"not valid JSON ({err.msg}, line {err.lineno} column {err.colno})", fix) from None
    if kind is not None and not isinstance(value, kind):
        raise damaged(path, f"expected a JSON {kind.__name__}, got {type(value).__name__}", fix)
    return value


def read_jsonl(path: str | Path, keys: tuple[str, ...] = ()) -> list[dict]:
    """Rows of a JSONL file, each an object holding ``keys``; problems name ``file:line``."""
    path = Path(path)
    rows = []
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        raise damaged(path, "missing") from None
    with handle:
        for lineno, raw in enumerate(iter(lambda: handle.readline(MAX_JSONL_LINE_BYTES + 1), b""), start=1):
            where = path.with_name(f"{path.name}:{lineno}")
            if len(raw) > MAX_JSONL_LINE_BYTES:
                raise damaged(where, f"line longer than {MAX_JSONL_LINE_BYTES >> 20} MiB")
            if not raw.strip():
                continue
            try:
                row = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as err:
                raise damaged(where, f"not valid JSON ({getattr(err, 'msg', 'not UTF-8')})") from None
            if not isinstance(row, dict) or any(key not in row for key in keys):
                missing = [k for k in keys if not isinstance(row, dict) or k not in row]
                raise damaged(where, f"not a row of this file (missing {', '.join(missing) or 'object'})")
            rows.append(row)
    return rows


def _numbers_by_phase(path: Path, unit: str) -> dict:
    """A ``{phase: number}`` file, checked; {} when absent. A non-number is damage, named with its unit."""
    if not path.is_file():
        return {}
    values = read_json(path, dict)
    for name, value in values.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise damaged(path, f"phase {name!r} has no number of {unit}")
    return values


def check_metrics(row, where: Path, fix: str = "") -> dict:
    """``row`` if it looks like an evaluation result (accuracy and per-bucket accuracy in [0, 1])."""

    def fraction(value) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1

    ok = (
        isinstance(row, dict)
        and isinstance(row.get("iteration"), int)
        and fraction(row.get("accuracy"))
        and isinstance(row.get("accuracy_by_bucket"), dict)
        and all(fraction(v) for v in row["accuracy_by_bucket"].values())
    )
    if not ok:
        raise damaged(where, "not an evaluation result (iteration, accuracy, accuracy_by_bucket)", fix)
    return row


# --------------------------------------------------------------------------------- links and scratch
def refuse_symlinks(root: str | Path, below: str | Path | None = None) -> None:
    """Raise `RunDirError` if anything inside ``root`` (or on the way to ``below``, and under it) is a link.

    ``root`` itself may be a link (``runs -> /data/runs`` is the operator's choice); nothing inside may.
    """
    root = Path(root)
    start = Path(below) if below is not None else root
    node = start
    while node != root and root in node.parents:
        if node.is_symlink():
            raise _link_error(node)
        node = node.parent
    if not start.is_dir() or (start != root and start.is_symlink()):
        return
    for folder, dirs, files in os.walk(start):  # followlinks=False: a linked folder is listed, not entered
        for name in dirs + files:
            if os.path.islink(os.path.join(folder, name)):
                raise _link_error(Path(folder) / name)


def _link_error(path: Path) -> RunDirError:
    return RunDirError(
        f"{printable(str(path))} is a symbolic link; selftaught never follows links inside a run directory "
        "(resume and checkpoint rotation would delete files where it points): replace it with a real file or folder"
    )


def remove_scratch(root: str | Path, path: str | Path) -> None:
    """Delete the scratch folder ``path`` inside ``root``; refuse if it, or a folder on the way, is a link."""
    refuse_symlinks(root, path)
    if Path(path).is_dir():
        shutil.rmtree(path)  # Python's rmtree unlinks links inside without following them


def sweep_temp(root: str | Path) -> list[str]:
    """Remove ``.NAME.*.tmp`` leftovers of writers that were killed mid-write (the caller holds the lock)."""
    removed = []
    for folder, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            if name.startswith(".") and name.endswith(".tmp"):
                path = Path(folder) / name
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
                removed.append(str(path))
        dirs[:] = [d for d in dirs if not (d.startswith(".") and d.endswith(".tmp"))]
    return removed


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
