"""The README's default run from a fresh clone, timed, for several seeds.

Clones the repository's HEAD into a temporary folder, reuses this checkout's .venv (the setup step
is timed separately by `make setup` on a fresh machine), empties the M0 cache so the base model is
trained inside the timed run, and runs `selftaught run --set seed=S` for each seed.
Run:  .venv/bin/python benchmarks/default_run.py --seeds 0 1 2
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


def one_seed(clone: Path, seed: int) -> dict:
    out = clone / "runs" / f"seed{seed}"
    cmd = [str(REPO / ".venv" / "bin" / "selftaught"), "run", "--out", str(out), "--set", f"seed={seed}", "--quiet"]
    start = time.perf_counter()
    subprocess.run(cmd, cwd=clone, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    summary = json.loads((out / "summary.json").read_text())
    last = summary["iterations"][-1]
    return {
        "seed": seed,
        "wall_seconds": round(wall, 1),
        "iterations_run": len(summary["iterations"]),
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
    parser.add_argument("--json", default=str(REPO / "benchmarks/results/default_run.json"))
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "selftaught"
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
        for seed in args.seeds:
            result = one_seed(clone, seed)
            results.append(result)
            digits = result["final_accuracy_by_digits"]
            print(
                f"seed {seed}: {result['wall_seconds']:.0f} s, {result['iterations_run']} iterations, "
                f"min(1-8 digits) {min(digits[str(d)] for d in range(1, 9)):.3f}, 10 digits {digits['10']:.3f}",
                flush=True,
            )
    Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    sys.exit(main())
