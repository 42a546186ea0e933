"""STaR ablations on the default arithmetic task, side by side in one process and one seed.

Variants (all from the same cached M0, same data, same step schedule):
  default          rationalization + answer filter + step check (answer+rationale)
  answer+rat       answer filter only, with rationalization
  answer-only      answer filter only, no rationalization
  direct           fine-tune M0 on question -> answer (no rationale)

Prints accuracy per digit count per iteration and seconds per phase; writes JSON.
Run:  .venv/bin/python benchmarks/arithmetic_ablations.py [--iterations 3] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from selftaught.config import load_config
from selftaught.loop import run_star

VARIANTS = {
    "default": [],
    "answer+rat": ["loop.filter=answer"],
    "answer-only": ["loop.filter=answer", "loop.rationalization=false"],
    "direct": ["loop.mode=direct"],
}


def run_variant(name: str, overrides: list[str], args) -> dict:
    out = Path(args.out) / name
    shutil.rmtree(out, ignore_errors=True)
    common = [f"seed={args.seed}", f"loop.iterations={args.iterations}", "loop.patience=0", *args.set]
    config = load_config(args.recipe, common + overrides)
    start = time.perf_counter()
    summary = run_star(config, out).to_json()  # the JSON form: this benchmark writes it as it is
    summary["wall_seconds"] = time.perf_counter() - start
    return summary


def table(results: dict) -> Table:
    first = next(iter(results.values()))
    buckets = list(first["base"]["accuracy_by_bucket"])
    t = Table(title="STaR ablations: test accuracy by digit count (iteration 0 = M0)")
    for col in ["variant", "iter", "all", *buckets, "kept", "rat.", "unverified kept", "gen s", "train s", "eval s"]:
        t.add_column(col, justify="right")
    for name, summary in results.items():
        for row in [summary["base"], *summary["iterations"]]:
            sec = row.get("seconds", {})
            t.add_row(
                name,
                str(row["iteration"]),
                f"{row['accuracy']:.3f}",
                *(f"{row['accuracy_by_bucket'][b]:.3f}" for b in buckets),
                str(row.get("num_kept", "")),
                str(row.get("num_rationalized", "")),
                str(row.get("num_kept_unverified", "")),
                f"{sec.get('generate', 0) + sec.get('rationalize', 0):.0f}",
                f"{sec.get('train', 0):.0f}",
                f"{sec.get('evaluate', 0):.0f}",
            )
    return t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="recipes/arithmetic.yaml")
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS))
    parser.add_argument("--set", nargs="*", default=[], help="extra overrides for every variant")
    parser.add_argument("--out", default="runs/bench-ablations")
    parser.add_argument("--json", default="benchmarks/results/arithmetic_ablations.json")
    args = parser.parse_args()
    results = {name: run_variant(name, VARIANTS[name], args) for name in args.variants}
    Console().print(table(results))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"args": vars(args), "results": results}, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
