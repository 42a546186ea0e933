"""The paper's table in miniature (issue 11): STaR against its baselines and ablations, over seeds.

Variants, each from the same cached M0, data, step schedule and number of iterations (patience off):
  M0 few-shot         the pretrained model under the few-shot prompt (iteration 0 of any run)
  direct              fine-tune M0 on question -> answer (loop.mode=direct)
  STaR no rat.        no rationalization
  STaR answer filter  keep every right answer, even when a step is wrong (loop.filter=answer)
  STaR                rationalization + answer filter + step check

For each variant and seed: final test accuracy, accuracy per bucket (steps for word problems, digits for
arithmetic), kept / rationalized / right-answer-but-failed-step counts of the last iteration, wall time.
Writes one JSON and one PNG (mean over seeds, bars from min to max) under benchmarks/results/.

Run:  .venv/bin/python benchmarks/paper_table.py [--recipe recipes/word_problems.yaml] [--seeds 0 1 2]
        [--iterations 3] [--set key=value ...] [--name paper_table]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VARIANTS = {
    "direct": ["loop.mode=direct"],
    "STaR no rat.": ["loop.rationalization=false"],
    "STaR answer filter": ["loop.filter=answer"],
    "STaR": [],
}


def run_variant(recipe: str, overrides: list[str], seed: int, args, out: Path) -> dict:
    from selftaught.config import load_config
    from selftaught.loop import run_star

    shutil.rmtree(out, ignore_errors=True)
    common = [f"seed={seed}", f"loop.iterations={args.iterations}", "loop.patience=0", *args.set]
    start = time.perf_counter()
    summary = run_star(load_config(recipe, common + overrides), out)
    last = summary["iterations"][-1]
    return {
        "accuracy": last["accuracy"],
        "accuracy_by_bucket": last["accuracy_by_bucket"],
        "num_kept": last.get("num_kept", 0),
        "num_rationalized": last.get("num_rationalized", 0),
        "num_kept_unverified": last.get("num_kept_unverified", 0),
        "wall_seconds": round(time.perf_counter() - start, 1),
        "base": summary["base"],
    }


def summarize(runs: dict[str, list[dict]]) -> dict[str, dict]:
    """Mean, min and max over seeds of each variant's accuracy, overall and per bucket."""
    rows = {}
    for name, results in runs.items():
        buckets = list(results[0]["accuracy_by_bucket"])
        rows[name] = {
            "accuracy": _spread([r["accuracy"] for r in results]),
            "by_bucket": {b: _spread([r["accuracy_by_bucket"][b] for r in results]) for b in buckets},
            "kept": statistics.mean(r["num_kept"] for r in results),
            "rationalized": statistics.mean(r["num_rationalized"] for r in results),
            "right_answer_failed_step": statistics.mean(r["num_kept_unverified"] for r in results),
            "wall_seconds": statistics.mean(r["wall_seconds"] for r in results),
        }
    return rows


def _spread(values: list[float]) -> dict:
    return {"mean": statistics.mean(values), "min": min(values), "max": max(values)}


def print_table(rows: dict[str, dict]) -> None:
    buckets = list(next(iter(rows.values()))["by_bucket"])
    print(
        f"{'variant':20} {'accuracy (min-max)':>22} "
        + " ".join(f"{b:>6}" for b in buckets)
        + "   kept  rat.  bad-step  wall s"
    )
    for name, r in rows.items():
        a = r["accuracy"]
        cells = " ".join(f"{r['by_bucket'][b]['mean']:6.1%}" for b in buckets)
        counts = f"{r['kept']:6.0f} {r['rationalized']:5.0f} {r['right_answer_failed_step']:9.0f}"
        print(f"{name:20} {a['mean']:8.1%} ({a['min']:.1%}-{a['max']:.1%}) {cells} {counts} {r['wall_seconds']:7.0f}")


def plot(rows: dict[str, dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(rows)
    means = [rows[n]["accuracy"]["mean"] for n in names]
    low = [m - rows[n]["accuracy"]["min"] for n, m in zip(names, means)]
    high = [rows[n]["accuracy"]["max"] - m for n, m in zip(names, means)]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.bar(names, means, yerr=[low, high], capsize=4, color="#4c72b0")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default=str(REPO / "recipes" / "word_problems.yaml"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--work", default=str(REPO / "runs" / "paper_table"))
    parser.add_argument("--name", default="paper_table")
    args = parser.parse_args()
    runs: dict[str, list[dict]] = {"M0 few-shot": [], **{name: [] for name in VARIANTS}}
    for seed in args.seeds:
        for name, overrides in VARIANTS.items():
            slug = name.replace(" ", "_").replace(".", "")
            result = run_variant(args.recipe, overrides, seed, args, Path(args.work) / f"seed{seed}" / slug)
            runs[name].append(result)
            print(f"seed {seed} {name}: {result['accuracy']:.1%} in {result['wall_seconds']:.0f} s", flush=True)
        base = runs["STaR"][-1]["base"]
        runs["M0 few-shot"].append({**base, "num_kept": 0, "num_rationalized": 0, "num_kept_unverified": 0,
                                    "wall_seconds": 0.0})  # fmt: skip
    rows = summarize(runs)
    print_table(rows)
    out = REPO / "benchmarks" / "results"
    payload = {"recipe": args.recipe, "seeds": args.seeds, "iterations": args.iterations, "set": args.set}
    (out / f"{args.name}.json").write_text(json.dumps({**payload, "rows": rows, "runs": runs}, indent=2) + "\n")
    plot(rows, out / f"{args.name}.png", f"{Path(args.recipe).stem}: {len(args.seeds)} seeds, {args.iterations} it.")
    print(f"wrote {out / args.name}.json and .png")


if __name__ == "__main__":
    main()
