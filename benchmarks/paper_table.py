"""The paper's table in miniature (issue 11): STaR against its baselines and ablations, over seeds.

Variants, each from the same cached M0, data, step schedule and number of iterations (patience off):
  M0 few-shot         the pretrained model under the few-shot prompt (iteration 0 of any run)
  direct              fine-tune M0 on question -> answer (loop.mode=direct), at two learning rates
  STaR no rat.        no rationalization
  STaR answer filter  keep every right answer, even when a step is wrong (loop.filter=answer)
  STaR                rationalization + answer filter + step check (word problems: + every-step check)
  STaR, GSM8K step check only   (word problems) without the every-step check

For each variant and seed: final test accuracy, accuracy per bucket (steps for word problems, digits for
arithmetic), kept / rationalized / right-answer-but-failed-step counts of the last iteration, wall time.
A variant whose first iteration keeps nothing (`NothingToTrain`: e.g. no rationalization and M0 right on
no training problem) never trains, so it is recorded as M0's accuracy with nothing kept.
Writes one JSON and one PNG (mean over seeds, bars from min to max) under benchmarks/results/.

M0 is pretrained (or read from its cache) once per seed before the variants, and that time is reported
on the M0 row. With --recipe recipes/arithmetic.yaml the same variants run on the arithmetic task.

Run:  .venv/bin/python benchmarks/paper_table.py [--recipe recipes/word_problems.yaml] [--seeds 0 1 2]
        [--iterations 2] [--set key=value ...] [--name paper_table]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VARIANTS = {  # direct at two learning rates: the baseline gets a tuned one too
    "direct, lr 3e-4": ["loop.mode=direct", "train.learning_rate=3e-4"],
    "direct, lr 1e-3": ["loop.mode=direct", "train.learning_rate=1e-3"],
    "STaR no rat.": ["loop.rationalization=false"],
    "STaR answer filter": ["loop.filter=answer"],
    "STaR": [],
}


def common_overrides(seed: int, args) -> list[str]:
    return [f"seed={seed}", f"loop.iterations={args.iterations}", "loop.patience=0", *args.set]


def pretrain_m0(recipe: str, seed: int, args) -> float:
    """Seconds to pretrain this seed's M0 (0 when it was cached already)."""
    from selftaught.common.ui import SILENT
    from selftaught.config import load_config
    from selftaught.loop import load_data
    from selftaught.training.base_model import ensure_base_model

    config = load_config(recipe, common_overrides(seed, args))
    start = time.perf_counter()
    ensure_base_model(config, load_data(config)[0], SILENT)
    return round(time.perf_counter() - start, 1)


def run_variant(recipe: str, overrides: list[str], seed: int, args, out: Path) -> dict:
    from selftaught.config import load_config
    from selftaught.loop import NothingToTrain, run_star

    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    try:
        summary = run_star(load_config(recipe, common_overrides(seed, args) + overrides), out).to_json()
    except NothingToTrain as error:  # an ablation that cannot start is a result: the model stays M0
        print(f"seed {seed} {out.name}: {error}; the model stays M0", flush=True)
        return _stays_m0(out, time.perf_counter() - start)
    return _row(summary["iterations"][-1], summary["base"], time.perf_counter() - start)


def _stays_m0(out: Path, seconds: float) -> dict:
    """A variant whose first iteration kept nothing: M0's test accuracy, no samples, no training."""
    base = json.loads((out / "base" / "metrics.json").read_text())
    return {**_row(base, base, seconds), "nothing_to_train": True}


def _row(last: dict, base: dict, seconds: float) -> dict:
    """One variant's result for one seed: ``last`` is its last iteration's metrics (M0's has no counts)."""
    return {
        "accuracy": last["accuracy"],
        "accuracy_by_bucket": last["accuracy_by_bucket"],
        "num_kept": last.get("num_kept", 0),
        "num_rationalized": last.get("num_rationalized", 0),
        "num_kept_unverified": last.get("num_kept_unverified", 0),
        "wall_seconds": round(seconds, 1),
        "base": base,
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
        f"{'variant':38} {'accuracy (min-max)':>22} "
        + " ".join(f"{b:>6}" for b in buckets)
        + "   kept  rat.  bad-step  wall s"
    )
    for name, r in rows.items():
        a = r["accuracy"]
        cells = " ".join(f"{r['by_bucket'][b]['mean']:6.1%}" for b in buckets)
        counts = f"{r['kept']:6.0f} {r['rationalized']:5.0f} {r['right_answer_failed_step']:9.0f}"
        print(f"{name:38} {a['mean']:8.1%} ({a['min']:.1%}-{a['max']:.1%}) {cells} {counts} {r['wall_seconds']:7.0f}")


def plot(rows: dict[str, dict], runs: dict[str, list[dict]], path: Path, title: str) -> None:
    """Mean accuracy per variant (bars, min-max whiskers, one dot per seed) and mean accuracy per step count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(rows)
    means = [rows[n]["accuracy"]["mean"] for n in names]
    low = [m - rows[n]["accuracy"]["min"] for n, m in zip(names, means)]
    high = [rows[n]["accuracy"]["max"] - m for n, m in zip(names, means)]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    left.bar(range(len(names)), means, yerr=[low, high], capsize=4, color="#4c72b0")
    for k, name in enumerate(names):
        left.scatter([k] * len(runs[name]), [r["accuracy"] for r in runs[name]], color="black", s=10, zorder=3)
    left.set_xticks(range(len(names)), names, rotation=20, ha="right")
    left.set_ylabel("test accuracy")
    left.set_ylim(0, 1)
    left.set_title(title)
    buckets = list(next(iter(rows.values()))["by_bucket"])
    for name in names:
        right.plot(buckets, [rows[name]["by_bucket"][b]["mean"] for b in buckets], marker="o", label=name)
    right.set_xlabel("bucket (steps per problem, or digits)")
    right.set_ylim(0, 1)
    right.set_title("mean accuracy per bucket")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _title(recipe: str, payload: dict) -> str:
    return f"{Path(recipe).stem}: {len(payload['seeds'])} seeds, {payload['iterations']} iterations"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default=str(REPO / "recipes" / "word_problems.yaml"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--work", default=str(REPO / "runs" / "paper_table"))
    parser.add_argument("--name", default="paper_table")
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="VARIANT",
        help="run only these variants (and keep the other rows of the JSON, if any)",
    )
    parser.add_argument("--replot", action="store_true", help="redraw the PNG from the JSON of an earlier run")
    args = parser.parse_args()
    out = REPO / "benchmarks" / "results"
    if args.replot:
        saved = json.loads((out / f"{args.name}.json").read_text())
        print_table(saved["rows"])
        plot(saved["rows"], saved["runs"], out / f"{args.name}.png", _title(saved["recipe"], saved))
        return
    variants = variants_for(args.recipe)
    chosen = {name: variants[name] for name in (args.only or variants)}
    runs = run_all(chosen, args)
    if args.only and (out / f"{args.name}.json").is_file():  # the other rows come from the earlier run
        saved = json.loads((out / f"{args.name}.json").read_text())
        runs = {**saved["runs"], **{name: runs[name] for name in chosen}}
    rows = summarize(runs)
    print_table(rows)
    payload = {"recipe": args.recipe, "seeds": args.seeds, "iterations": args.iterations, "set": args.set}
    (out / f"{args.name}.json").write_text(json.dumps({**payload, "rows": rows, "runs": runs}, indent=2) + "\n")
    plot(rows, runs, out / f"{args.name}.png", _title(args.recipe, payload))
    print(f"wrote {out / args.name}.json and .png")


def variants_for(recipe: str) -> dict[str, list[str]]:
    """The variants; word problems add the ablation of their every-step check."""
    from selftaught.config import load_config

    if load_config(recipe, []).task.name != "word_problems":
        return VARIANTS
    return {**VARIANTS, "STaR, GSM8K step check only": ["task.word_problems.check_every_step=false"]}


def run_all(variants: dict[str, list[str]], args) -> dict[str, list[dict]]:
    """Each seed's M0 (timed), then each variant from it; M0's row comes from the last variant's run."""
    runs: dict[str, list[dict]] = {"M0 few-shot": [], **{name: [] for name in variants}}
    for seed in args.seeds:
        m0_seconds = pretrain_m0(args.recipe, seed, args)
        print(f"seed {seed} M0: pretrained in {m0_seconds:.0f} s (0 = cached)", flush=True)
        for name, overrides in variants.items():
            slug = name.replace(" ", "_").replace(".", "").replace(",", "")
            result = run_variant(args.recipe, overrides, seed, args, Path(args.work) / f"seed{seed}" / slug)
            runs[name].append(result)
            print(f"seed {seed} {name}: {result['accuracy']:.1%} in {result['wall_seconds']:.0f} s", flush=True)
        base = result["base"]
        runs["M0 few-shot"].append(_row(base, base, m0_seconds))
    return runs


if __name__ == "__main__":
    main()
