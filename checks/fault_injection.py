"""Kill a smoke run with SIGKILL at random moments in every phase, resume it, compare with a clean run.

1. A reference run of the smoke recipe (own empty M0 cache) is watched every 20 ms to time its phases:
   startup, M0 training, M0 evaluation, then generate / rationalize / train / evaluate per iteration.
2. Each trial starts the same run in a fresh directory, waits until it enters a chosen phase (phases
   taken in turn, so kills spread over all of them), SIGKILLs it at a random moment within that
   phase's reference duration, then runs ``selftaught run --resume`` until it finishes. Trials that
   target a phase after M0's training start from a copy of the reference's M0 cache (saves time).
3. The resumed run must match the reference: every ``train.jsonl`` identical, ``summary.json``
   accuracies identical; and no corrupt or missing files (all JSON parses, no temp files or scratch
   folders left, the lock released).

Run:  .venv/bin/python checks/fault_injection.py --trials 24
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RECIPE = REPO / "recipes" / "arithmetic_smoke.yaml"
EXPECTED = ("config.yaml", "summary.json", "base/metrics.json", "base/eval.jsonl")
ITER_FILES = ("generated.jsonl", "train.jsonl", "metrics.json", "eval.jsonl", "phases.json", "checkpoint/config.json")


def command(out: Path, cache: Path, resume: bool) -> list[str]:
    exe = [sys.executable, "-m", "selftaught.cli", "run"]
    if resume:
        return [*exe, "--resume", str(out), "--quiet"]
    return [*exe, str(RECIPE), "--out", str(out), "--quiet", "--set", f"model.base.cache_dir={cache}"]


def phase_now(out: Path, cache: Path, iterations: int = 2) -> str:
    """Which phase a run in ``out`` is in, from what is on disk."""
    if not (out / "config.yaml").is_file():
        return "startup"
    if not any(cache.glob("[0-9a-f]*/config.json")):
        return "base-train"
    if not (out / "base" / "phases.json").is_file():
        return "base-evaluate"
    for n in range(1, iterations + 1):
        path = out / f"iter_{n:03d}" / "phases.json"
        done = json.loads(path.read_text()) if path.is_file() else {}
        for phase in ("generate", "rationalize", "train", "evaluate"):
            if phase not in done:
                return f"iter{n}-{phase}"
    return "finishing"


def reference_timeline(work: Path) -> tuple[Path, dict[str, tuple[float, float]]]:
    out, cache = work / "reference", work / "reference-cache"
    start = time.perf_counter()
    proc = subprocess.Popen(command(out, cache, False), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    windows: dict[str, list[float]] = {}
    while proc.poll() is None:
        try:
            phase = phase_now(out, cache)
        except (OSError, ValueError):
            phase = None  # a file being replaced right now
        if phase:
            now = time.perf_counter() - start
            windows.setdefault(phase, [now, now])[1] = now
        time.sleep(0.02)
    if proc.returncode != 0:
        raise SystemExit(f"reference run failed: {proc.stderr.read().decode()[-2000:]}")
    return out, {k: (a, b) for k, (a, b) in windows.items() if k != "finishing"}


def check_files(out: Path, iterations: int) -> list[str]:
    problems = [f"missing {name}" for name in EXPECTED if not (out / name).is_file()]
    for n in range(1, iterations + 1):
        problems += [f"missing iter_{n:03d}/{f}" for f in ITER_FILES if not (out / f"iter_{n:03d}" / f).is_file()]
    for path in out.rglob("*"):
        if path.name.endswith(".tmp") or path.name in (".chunks", ".trainer", "run.lock"):
            problems.append(f"left over: {path.relative_to(out)}")
        elif path.suffix == ".json" or path.suffix == ".jsonl":
            try:
                text = path.read_text()
                [
                    json.loads(line) for line in text.splitlines() if line.strip()
                ] if path.suffix == ".jsonl" else json.loads(text)
            except ValueError:
                problems.append(f"corrupt {path.relative_to(out)}")
    return problems


def compare(reference: Path, out: Path, iterations: int) -> list[str]:
    diffs = []
    for n in range(1, iterations + 1):
        name = f"iter_{n:03d}/train.jsonl"
        if (out / name).is_file() and (reference / name).read_text() != (out / name).read_text():
            diffs.append(f"{name} differs")
    if (out / "summary.json").is_file():
        ref, got = json.loads((reference / "summary.json").read_text()), json.loads((out / "summary.json").read_text())
        accuracies = lambda s: [s["base"]["accuracy_by_bucket"]] + [r["accuracy_by_bucket"] for r in s["iterations"]]  # noqa: E731
        if accuracies(ref) != accuracies(got):
            diffs.append("summary accuracies differ")
    return diffs


def wait_for_phase(proc, out: Path, cache: Path, phase: str, iterations: int) -> float:
    start = time.perf_counter()
    while proc.poll() is None:
        try:
            if phase_now(out, cache, iterations) == phase:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.005)
    return time.perf_counter() - start


def trial(work: Path, k: int, phase: str, delay: float, reference: Path, iterations: int) -> dict:
    out, cache = work / f"trial{k:02d}", work / f"trial{k:02d}-cache"
    if phase not in ("startup", "base-train"):
        shutil.copytree(work / "reference-cache", cache)
    proc = subprocess.Popen(command(out, cache, False), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    moment = wait_for_phase(proc, out, cache, phase, iterations) + delay
    time.sleep(delay)
    hit = phase_now(out, cache, iterations)
    finished_before_kill = proc.poll() is not None
    proc.send_signal(signal.SIGKILL)  # no-op if it already exited (Popen knows; os.kill would race)
    proc.wait()
    resumed = subprocess.run(
        command(out, cache, resume=(out / "config.yaml").is_file()), cwd=REPO, capture_output=True, text=True
    )
    if not (out / "config.yaml").is_file() and resumed.returncode == 0:
        pass  # killed before the run directory existed: the "resume" was a fresh start, which is right
    problems = check_files(out, iterations) + compare(reference, out, iterations)
    if resumed.returncode != 0:
        problems.append(f"resume exited {resumed.returncode}: {resumed.stderr.strip()[-300:]}")
    result = {"trial": k, "target_phase": phase, "killed_in": "after exit" if finished_before_kill else hit}
    result |= {"kill_at_s": round(moment, 2), "ok": not problems, "problems": problems}
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(cache, ignore_errors=True)
    return result


def concurrent_check(work: Path, reference: Path, iterations: int) -> dict:
    """A second process on a running run's directory is refused; the first finishes unharmed."""
    out, cache = work / "concurrent", work / "concurrent-cache"
    first = subprocess.Popen(command(out, cache, False), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    while not (out / "run.lock").is_file() and first.poll() is None:
        time.sleep(0.05)
    second_new = subprocess.run(command(out, cache, False), cwd=REPO, capture_output=True, text=True)
    second_resume = subprocess.run(command(out, cache, True), cwd=REPO, capture_output=True, text=True)
    first.wait()
    problems = check_files(out, iterations) + compare(reference, out, iterations)
    return {
        "second_new_exit": second_new.returncode,
        "second_new_message": second_new.stderr.strip(),
        "second_resume_exit": second_resume.returncode,
        "second_resume_message": second_resume.stderr.strip(),
        "first_exit": first.returncode,
        "first_problems": problems,
        "ok": second_new.returncode == 2 and second_resume.returncode == 2 and first.returncode == 0 and not problems,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=str(REPO / "checks/results/fault_injection.json"))
    args = parser.parse_args()
    rng = random.Random(args.seed)
    iterations = 2
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        reference, windows = reference_timeline(work)
        print("reference phases (s from start):", {k: (round(a, 2), round(b, 2)) for k, (a, b) in windows.items()})
        phases = list(windows)
        results = []
        for k in range(args.trials):
            phase = phases[k % len(phases)]
            low, high = windows[phase]
            result = trial(work, k, phase, rng.uniform(0, 0.9 * (high - low)), reference, iterations)
            results.append(result)
            status = "ok" if result["ok"] else "FAIL " + "; ".join(result["problems"])
            print(
                f"trial {k:2d}: kill at {result['kill_at_s']:6.2f}s in {result['killed_in']:<22} {status}", flush=True
            )
        concurrent = concurrent_check(work, reference, iterations)
        print(f"concurrent: {json.dumps(concurrent)}")
    ok = sum(r["ok"] for r in results)
    hit = sorted({r["killed_in"] for r in results})
    print(f"{ok}/{len(results)} resumed runs identical to the reference, 0 corrupt files: {ok == len(results)}")
    print(f"phases hit: {hit}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    report = {"windows": windows, "trials": results, "concurrent": concurrent}
    Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0 if ok == len(results) and concurrent["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
