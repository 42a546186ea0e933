"""The run directory: every file written atomically, every finished phase recorded.

Layout::

    RUN/config.yaml              resolved config
    RUN/base/metrics.json        evaluation of the starting model M0
    RUN/iter_001/generated.jsonl every sample: id, hinted, text, answer, correct, verified, problem
    RUN/iter_001/train.jsonl     what was trained on: id, prompt (never hinted), completion, source
    RUN/iter_001/metrics.json    accuracy, accuracy_by_bucket, counts, steps, seconds per phase
    RUN/iter_001/checkpoint/     the fine-tuned model (HF format)
    RUN/iter_001/phases.json     phases finished so far, with their seconds
    RUN/summary.json             one row per finished iteration
    RUN/accuracy.png             accuracy by bucket across iterations

A file appears under its final name only once complete (write to a temporary name, fsync, rename),
so after a crash each file is either whole or absent, and ``phases.json`` says what to redo.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import socket
import tempfile
from pathlib import Path


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


UMASK = _current_umask()  # read once: os.umask can only be read by setting it, which is not thread-safe


def atomic_write_text(path: str | Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(fd, 0o666 & ~UMASK)  # mkstemp makes 0600; a shared run follows the umask like any file
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_write_jsonl(path: str | Path, rows: list[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def read_json(path: str | Path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def read_jsonl(path: str | Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def atomic_save_dir(path: str | Path, write) -> None:
    """Call ``write(tmp_dir)`` then move the finished folder to ``path`` (replacing any old one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        tmp.chmod(0o777 & ~UMASK)  # mkdtemp makes 0700
        write(tmp)
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


class RunDir:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def iteration(self, n: int) -> Path:
        return self.root / f"iter_{n:03d}"

    @property
    def base(self) -> Path:
        return self.root / "base"

    def phases(self, folder: Path) -> dict:
        path = folder / "phases.json"
        return read_json(path) if path.is_file() else {}

    def is_done(self, folder: Path, phase: str) -> bool:
        return phase in self.phases(folder)

    def mark_done(self, folder: Path, phase: str, seconds: float) -> None:
        phases = self.phases(folder)
        phases[phase] = round(seconds, 3)
        atomic_write_json(folder / "phases.json", phases)

    def finished_iterations(self) -> list[int]:
        done = []
        for folder in sorted(self.root.glob("iter_[0-9][0-9][0-9]")):
            if (folder / "metrics.json").is_file() and self.is_done(folder, "evaluate"):
                done.append(int(folder.name.split("_")[1]))
        return done

    def write_summary(self, extra: dict) -> dict:
        rows = [read_json(self.iteration(n) / "metrics.json") for n in self.finished_iterations()]
        summary = {**extra, "iterations": rows}
        atomic_write_json(self.root / "summary.json", summary)
        return summary


class RunInUse(RuntimeError):
    """Another live process holds the run directory."""


class RunLock:
    """``run.lock`` holding ``PID HOST``: one process per run directory.

    A lock left by a process that no longer exists on this host is stale and taken over; a lock from
    a live process (or from another host, where liveness cannot be checked) refuses the run.
    """

    def __init__(self, root: str | Path):
        self.path = Path(root) / "run.lock"
        self.mine = f"{os.getpid()} {socket.gethostname()}"

    def _holder_alive(self) -> tuple[bool, str]:
        try:
            pid_text, _, host = self.path.read_text().strip().partition(" ")
            pid = int(pid_text)
        except (OSError, ValueError):
            return False, "unreadable lock"  # a lock cut short by a kill is stale
        if host != socket.gethostname():
            return True, f"process {pid} on host {host}"
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False, f"process {pid} (gone)"
        except PermissionError:
            pass  # exists, owned by someone else
        return True, f"process {pid}"

    def acquire(self) -> None:
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                alive, who = self._holder_alive()
                if alive:
                    raise RunInUse(f"{self.path.parent} is in use by {who}; wait for it to finish or stop it") from None
                self.path.unlink(missing_ok=True)  # stale: the holder died without releasing
                continue
            with os.fdopen(fd, "w") as handle:
                handle.write(self.mine + "\n")
            atexit.register(self.release)
            return
        raise RunInUse(f"could not take {self.path} (another process keeps re-creating it)")

    def release(self) -> None:
        try:
            if self.path.read_text().strip() == self.mine:
                self.path.unlink()
        except OSError:
            pass


def config_diff(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ, as ``key: old -> new``.

    >>> config_diff({"a": 1, "b": {"c": 2}}, {"a": 1, "b": {"c": 3}})
    ['b.c: 2 -> 3']
    """
    changes = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        where = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            changes += config_diff(a, b, where + ".")
        elif a != b:
            changes.append(f"{where}: {a!r} -> {b!r}")
    return changes
