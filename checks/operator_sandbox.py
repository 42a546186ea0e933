"""The sandbox of `operator_faults.py`: a recipe, M0's cache, a reference run, and a process runner that
records exit code, stderr, peak memory and time. See that script's docstring."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "checks" / "results" / "operator_faults.json"
SRC = REPO / "src"
sys.path.insert(0, str(REPO))
from tests.operator_scripts import SLOW_CHECKPOINT  # noqa: E402,F401  (the tests replay the same wrapper)

RECIPE = """\
seed: 0
task:
  arithmetic: {{train_digits: [1, 2, 3], test_digits: [1, 2, 3], train_per_digit: 12, test_per_digit: 8}}
model:
  base: {{num_layers: 3, hidden_size: 64, max_digits: 2, steps: 600, batch_size: 32, learning_rate: 0.002,
          cache_dir: {cache}}}
generation: {{batch_size: 16, chunk_size: 8}}
train: {{first_steps: 8, batch_size: 16, save_every_steps: 4}}
loop: {{iterations: 1, patience: 0}}
"""


class World:
    """The sandbox shared by all cases: a recipe, M0's cache and a finished reference run."""

    def __init__(self, work: Path, src: Path):
        self.work, self.src = work, src
        self.cache = work / "cache"
        self.recipe = work / "recipe.yaml"
        self.recipe.write_text(RECIPE.format(cache=self.cache))
        self.ref = work / "reference"
        start = time.perf_counter()
        result = self.cli(["run", str(self.recipe), "--out", str(self.ref), "--quiet"], work, timeout=7200)
        if result["exit"] != 0:
            raise SystemExit(f"reference run failed: {result['stderr'][-2000:]}")
        self.reference_seconds = round(time.perf_counter() - start, 1)

    def cli(self, args: list, cwd: Path, timeout: float = 600, **options) -> dict:
        return run_process([sys.executable, "-m", "selftaught.cli", *args], cwd, self.src, timeout, **options)

    def box(self, name: str) -> Path:
        """A fresh folder for one case, holding ``outside/``: files no case may touch."""
        box = self.work / name
        shutil.rmtree(box, ignore_errors=True)
        (box / "outside" / "keep").mkdir(parents=True)
        (box / "outside" / "notes.txt").write_text("precious\n")
        (box / "outside" / "keep" / "data.bin").write_bytes(os.urandom(4096))
        return box

    def run_copy(self, box: Path, drop_iteration: bool = False) -> Path:
        """A copy of the finished reference run; ``drop_iteration``: without iter_001, so a resume redoes it."""
        run = box / "run"
        shutil.copytree(self.ref, run, symlinks=True)
        if drop_iteration:
            shutil.rmtree(run / "iter_001")
            (run / "summary.json").unlink()
        return run

    def resume(self, run: Path, *extra: str, timeout: float = 600) -> dict:
        return self.cli(["run", "--resume", str(run), "--quiet", *extra], run.parent, timeout=timeout)

    def identical(self, run: Path) -> bool:
        try:
            same = (run / "iter_001/train.jsonl").read_text() == (self.ref / "iter_001/train.jsonl").read_text()
            ref, got = (json.loads((p / "summary.json").read_text()) for p in (self.ref, run))
        except (OSError, ValueError):
            return False
        accuracies = lambda s: [s["base"]["accuracy_by_bucket"]] + [r["accuracy_by_bucket"] for r in s["iterations"]]  # noqa: E731
        return same and accuracies(ref) == accuracies(got)


def run_process(
    command: list, cwd: Path, src: Path, timeout: float, env: dict | None = None, during=None, max_rss_mb: int = 0
) -> dict:
    """Exit code (or 'timeout' / 'killed at N MB'), stdout, stderr, seconds and peak RSS (MB) of one process.

    ``during(proc)`` runs once the process started (to signal it); ``max_rss_mb`` kills it beyond that much
    memory, so that a case which blows up under old code cannot take the machine down.
    """
    # one thread in every process of a benchmark run (so their results compare); spinning OpenMP threads
    # on a shared 2-core machine made runs many times slower
    env = {**os.environ, "PYTHONPATH": str(src), "COLUMNS": "200", "OMP_NUM_THREADS": "1", **(env or {})}
    start = time.perf_counter()
    verdict = None
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        if during:
            during(proc)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            rss = _rss_mb(proc.pid)
            if time.perf_counter() - start > timeout or (max_rss_mb and rss > max_rss_mb):
                verdict = "timeout" if time.perf_counter() - start > timeout else f"killed at {rss} MB"
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.02)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        stdout, stderr = out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace")
    return {
        "exit": verdict or proc.returncode,
        "stdout": stdout,
        "stderr": stderr,
        "seconds": round(time.perf_counter() - start, 1),
        "peak_mb": round(usage.ru_maxrss / 1024),
    }


def alive(proc) -> bool:
    """Still running? (Unlike ``proc.poll()``, leaves the exit status for `run_process` to collect.)"""
    return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None


def _rss_mb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
    except (OSError, ValueError):
        pass
    return 0


def snapshot(folder: Path) -> dict:
    if not folder.exists():
        return {}
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(folder.rglob("*"))
        if not p.is_symlink()
    }


def outcome(result: dict, **extra) -> dict:
    """The recorded facts of one process; transformers' progress bars are counted apart from message lines."""
    all_lines = [line for line in result["stderr"].splitlines() if line.strip()]
    bars = [line for line in all_lines if "it/s]" in line or "s/it]" in line]
    lines = [line for line in all_lines if line not in bars]
    row = {
        "exit": result["exit"],
        "lines": len(lines),
        "message": (lines[0][:240] if lines else ""),
        "progress_bar_lines": len(bars),
        "traceback": "Traceback" in result["stderr"] or "Traceback" in result["stdout"],
        "stderr_bytes": len(result["stderr"].encode()),
        "peak_mb": result["peak_mb"],
        "seconds": result["seconds"],
    }
    return row | extra


def refused(row: dict, *words: str) -> bool:
    """Exit 2, one line, no traceback, and the line says what it should."""
    text = row["message"].lower()
    return row["exit"] == 2 and row["lines"] == 1 and not row["traceback"] and all(w.lower() in text for w in words)


CASES: dict = {}


def case(name: str, group: str, needs_root: bool = False):
    def register(fn):
        CASES[name] = {"fn": fn, "group": group, "needs_root": needs_root}
        return fn

    return register


# ------------------------------------------------------------------------------------------ helpers of cases
def _resume_check(world: World, run: Path, row: dict, *extra: str) -> dict:
    """After the refusal the operator fixes the cause; the run must then finish as the reference did."""
    resumed = world.resume(run, *extra)
    row["resume_exit"] = resumed["exit"]
    row["resumed_identical"] = resumed["exit"] == 0 and world.identical(run)
    return row


LOCK_RACE = """\
import json, multiprocessing as mp, os, sys, tempfile
from selftaught.rundir import RunInUse, RunLock

def attempt(root, start, done, wins):
    start.wait()
    try:
        RunLock(root).acquire()
        with wins.get_lock():
            wins.value += 1
    except RunInUse:
        pass
    done.wait()  # hold until both tried
    os._exit(0)

ctx = mp.get_context("fork")
counts = {"trials": int(sys.argv[1]), "both_won": 0, "none_won": 0}
for _ in range(counts["trials"]):
    root = tempfile.mkdtemp()
    start, done, wins = ctx.Barrier(2), ctx.Barrier(2), ctx.Value("i", 0)
    procs = [ctx.Process(target=attempt, args=(root, start, done, wins)) for _ in range(2)]
    [p.start() for p in procs]
    [p.join() for p in procs]
    counts["both_won"] += wins.value == 2
    counts["none_won"] += wins.value == 0
print(json.dumps(counts))
"""


def _damaged_file(world: World, box: Path, name: str, damage, words: tuple, drop: bool = False) -> dict:
    run = world.run_copy(box, drop_iteration=drop)
    path = run / name
    original = path.read_bytes()
    path.write_bytes(damage(original))
    row = outcome(world.resume(run, timeout=300))
    row["first_attempt_identical"] = row["exit"] == 0 and world.identical(run)
    path.write_bytes(original)
    _resume_check(world, run, row)
    row["clean"] = refused(row, name.split("/")[-1], *words) and row["resumed_identical"]
    return row


def _without_tail(text: bytes) -> bytes:
    return text[: text.index(b"\ntrain:") + 1]  # a truncated tail: train.* and loop.* would take defaults


def _recipe_case(world: World, box: Path, recipe: str | bytes, words: tuple, max_stderr: int = 2000) -> dict:
    path = box / "recipe.yaml"
    path.write_bytes(recipe if isinstance(recipe, bytes) else recipe.encode())
    result = world.cli(["run", str(path), "--out", str(box / "run"), "--quiet"], box, timeout=300, max_rss_mb=4000)
    row = outcome(result)
    row["clean"] = refused(row, *words) and row["stderr_bytes"] <= max_stderr and not (box / "run").exists()
    return row


def _override_case(world: World, box: Path, sets: list[str], words: tuple, timeout: float = 600) -> dict:
    args = ["run", str(world.recipe), "--out", str(box / "run"), "--quiet"]
    row = outcome(world.cli(args + [x for s in sets for x in ("--set", s)], box, timeout=timeout))
    summary = box / "run" / "summary.json"
    row["finished_accuracy"] = (
        json.loads(summary.read_text())["iterations"][-1]["accuracy"] if summary.is_file() else None
    )
    row["clean"] = refused(row, *words)
    return row


def _interrupt(world: World, box: Path, signals: list[int], wrapper: str | None = None) -> dict:
    run, marker = box / "run", box / "marker"
    if wrapper:
        command = [sys.executable, "-c", wrapper, str(marker), "run", str(world.recipe), "--out", str(run), "--quiet"]
        ready = marker.exists
    else:
        command = [sys.executable, "-m", "selftaught.cli", "run", str(world.recipe), "--out", str(run), "--quiet"]
        ready = (run / "iter_001" / ".chunks").exists

    def send(proc):
        while alive(proc) and not ready():
            time.sleep(0.01)
        for k, signum in enumerate(signals):
            time.sleep(0.2 if k else 0)
            proc.send_signal(signum)

    row = outcome(run_process(command, box, world.src, 600, during=send))
    lock = run / "run.lock"
    row["lock_left"] = lock.exists()
    _resume_check(world, run, row)
    expected = 128 + signals[0]
    row["clean"] = (
        row["exit"] == expected
        and row["lines"] == 1
        and "--resume" in row["message"]
        and not row["traceback"]
        and row["resumed_identical"]
    )
    return row


def _foreign_lock(world: World, box: Path, text: str) -> dict:
    run = world.run_copy(box, drop_iteration=True)
    (run / "run.lock").write_text(text)
    row = outcome(world.resume(run))
    row["resumed_identical"] = row["exit"] == 0 and world.identical(run)
    row["clean"] = row["exit"] == 0 and not row["traceback"] and row["resumed_identical"]
    return row


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


def _validate(world: World, box: Path, path: str, **limits) -> dict:
    args = ["data", "validate", "--task", "jsonl", "--path", path]
    return world.cli(args, box, timeout=120, **limits)
