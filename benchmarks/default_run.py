"""The README's default run from a fresh clone, timed, for several seeds.

Clones the repository's HEAD into a temporary folder, reuses this checkout's .venv (the setup step
is timed separately by `make setup` on a fresh machine), empties the M0 cache so the base model is
trained inside the timed run, and runs `selftaught run --set seed=S` for each seed.
``--set KEY=VALUE`` passes overrides (e.g. ``train.packing=false`` for the padded baseline). Time to
target: the wall time until the first iteration whose test accuracy reaches ``--target``, i.e. the wall
time less the phases of the iterations after it.
Run:  .venv/bin/python benchmarks/default_run.py --seeds 0 1 2 [--set K=V] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def phase_seconds(iterations: list[dict]) -> float:
    """Seconds spent in the phases (generate, rationalize, train, evaluate) of these iterations."""
    return sum(sum(r["seconds"].values()) for r in iterations)


def one_seed(clone: Path, seed: int, overrides: list[str] = (), target: float = 0.99) -> dict:
    out = clone / "runs" / f"seed{seed}-{len(list(clone.glob('runs/*')))}"
    cmd = [str(REPO / ".venv" / "bin" / "selftaught"), "run", "--out", str(out), "--set", f"seed={seed}", "--quiet"]
    cmd += [arg for item in overrides for arg in ("--set", item)]
    cache = clone / ".cache"
    if cache.exists():
        import shutil

        shutil.rmtree(cache)  # M0 is trained inside every timed run
    start = time.perf_counter()
    subprocess.run(cmd, cwd=clone, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    summary = json.loads((out / "summary.json").read_text())
    last = summary["iterations"][-1]
    reached = [k for k, r in enumerate(summary["iterations"]) if r["accuracy"] >= target]
    after = summary["iterations"][reached[0] + 1 :] if reached else []
    to_target = wall - phase_seconds(after) if reached else None
    # everything that is not an iteration's phase: start-up, M0's training and its evaluation
    before_iterations = wall - phase_seconds(summary["iterations"])
    return {
        "seed": seed,
        "overrides": list(overrides),
        "wall_seconds": round(wall, 1),
        "target_accuracy": target,
        "seconds_to_target": round(to_target, 1) if to_target is not None else None,
        "iterations_run": len(summary["iterations"]),
        "final_accuracy": last["accuracy"],
        "seconds_before_iteration_1": round(before_iterations, 1),
        "base_accuracy_by_digits": summary["base"]["accuracy_by_bucket"],
        "final_accuracy_by_digits": last["accuracy_by_bucket"],
        "per_iteration": [
            {k: r[k] for k in ("iteration", "accuracy", "num_kept", "num_rationalized", "train_steps", "seconds")}
            for r in summary["iterations"]
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--target", type=float, default=0.99)
    parser.add_argument("--json", default=str(REPO / "benchmarks/results/default_run.json"))
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "selftaught"
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
        for seed in args.seeds:
            result = one_seed(clone, seed, args.overrides, args.target)
            results.append(result)
            digits = result["final_accuracy_by_digits"]
            print(
                f"seed {seed}: {result['wall_seconds']:.0f} s ({result['seconds_to_target']} s to "
                f"{args.target:.0%}; {result['seconds_before_iteration_1']:.0f} s start-up, M0 and its evaluation), "
                f"{result['iterations_run']} iterations, final {result['final_accuracy']:.2%}, "
                f"min(1-8 digits) {min(digits[str(d)] for d in range(1, 9)):.3f}, 10 digits {digits['10']:.3f}",
                flush=True,
            )
    Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    sys.exit(main())
