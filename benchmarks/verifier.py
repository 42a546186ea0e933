"""Where V-STaR's verifier pays (issue 25): pass@1, maj@k, pass@k and Verifier@k on the word problems.

Per seed: a STaR run on the word problems with ``generation.num_samples`` samples per training question
(the verifier's pairs are a by-product of the loop); then verifiers trained with TRL's DPO on the samples
of iterations 1..t for each t; then n samples per test question from the run's last generator, each scored
by every verifier; pass@1, maj@k, pass@k and Verifier@k for k = 1, 2, 4, ..., n from those same samples
(the unbiased estimators of `selftaught.verifier.estimate`), with the seconds for sampling, scoring and
training; beside them maj@k of only the samples whose steps check (the task's own check as the picker).
``--rpo``: also a STaR run per seed with ``train.objective=rpo``, its generator's row beside SFT's. Every part
is resumable: finished runs, verifiers and sample files are reused.

    .venv/bin/python benchmarks/verifier.py --seeds 0 1 --iterations 2 --samples 16

Writes benchmarks/results/verifier.json and verifier.png and prints the table (mean over seeds, min-max).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from selftaught import rundir, star  # noqa: E402
from selftaught.common import atomic  # noqa: E402
from selftaught.config import load_config  # noqa: E402
from selftaught.loop import run_star  # noqa: E402
from selftaught.rundir import prepare_run_dir, release_run_dir  # noqa: E402
from selftaught.samples import Sample  # noqa: E402
from selftaught.tasks import make_task  # noqa: E402
from selftaught.verifier.bestofk import (  # noqa: E402
    ScoredQuestion,
    best_of_k_metrics,
    k_values,
    sample_and_grade,
    score_rows,
)
from selftaught.verifier.train import train_verifier, with_verifier_overrides  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def star_run(args, seed: int, m0: str | None, objective: str = "sft") -> Path:
    """The seed's STaR run (resumed if it exists); ``m0`` reuses another seed's pretrained M0;
    ``objective`` is step 4's (``rpo``: the generator trained by preference, the issue's optional row)."""
    out = Path(args.out) / (f"star_s{seed}" if objective == "sft" else f"star_{objective}_s{seed}")
    overrides = [*args.set, f"seed={seed}", f"loop.iterations={args.iterations}", f"train.objective={objective}"]
    if m0:
        overrides.append(f"model.name_or_path={m0}")
    if (out / "summary.json").is_file() and len(
        rundir.read_json(out / "summary.json")["iterations"]
    ) >= args.iterations:
        return out
    config = load_config(args.recipe, overrides)
    run_star(None if (out / "config.yaml").is_file() else config, out, resume=(out / "config.yaml").is_file())
    return out


def test_samples(run: Path, config, n: int, temperature: float, max_test: int) -> tuple[list, list, float]:
    """n graded samples per test question from the run's last generator (cached in the run directory)."""
    task = make_task(config)
    examples = task.load("test")
    if max_test and len(examples) > max_test:  # every k-th question: each bucket keeps its share
        examples = examples[:: -(-len(examples) // max_test)]
    cache = run / f"bench_samples_n{n}_t{temperature}_q{len(examples)}.json"
    if cache.is_file():
        data = rundir.read_json(cache)
        return examples, [[Sample.from_json(r) for r in group] for group in data["rows"]], data["seconds"]
    last = rundir.RunDir(run).finished_iterations()[-1]
    generator = str(rundir.RunDir(run).iteration(last) / "checkpoint")
    rows, seconds = sample_and_grade(config, generator, examples, n, temperature, config.loop.few_shot_for_trained)
    atomic.atomic_write_json(cache, {"rows": [[r.to_json() for r in group] for group in rows], "seconds": seconds})
    return examples, rows, seconds


def one_seed(args, seed: int, m0: str | None) -> dict:
    run = star_run(args, seed, m0)
    config, lock = prepare_run_dir(None, run, resume=True)
    try:
        examples, rows, sample_seconds = test_samples(run, config, args.samples, args.temperature, args.max_test)
        task, out = make_task(config), {"sample_seconds": sample_seconds, "verifiers": {}}
        for t in range(1, args.iterations + 1):
            v_config = with_verifier_overrides(config, [f"verifier.iterations={t}", *args.verifier_set])
            start = time.perf_counter()
            metrics = train_verifier(v_config, run, run / f"verifier_it{t}")
            folder = run / f"verifier_it{t}" / "checkpoint"
            questions, score_seconds = score_rows(v_config, task, folder, examples, rows)
            out["verifiers"][str(t)] = {
                **best_of_k_metrics(questions, k_values(args.samples)),
                "num_pairs": metrics["num_pairs"],
                "train_seconds": metrics["seconds"]["train"],
                "score_seconds": score_seconds,
                "wall_seconds": time.perf_counter() - start,
            }
            print(f"seed {seed}, verifier on {t} iteration(s): {metrics['num_pairs']} pairs", flush=True)
        out["greedy_accuracy"] = rundir.read_json(run / "summary.json")["iterations"][-1]["accuracy"]
        out["num_questions"] = len(examples)
    finally:
        release_run_dir(lock)
    return out


def generator_row(args, seed: int, m0: str | None, objective: str) -> dict:
    """pass@1, maj@k and pass@k of the samples of a STaR run trained with ``objective`` (no verifier)."""
    run = star_run(args, seed, m0, objective)
    config, lock = prepare_run_dir(None, run, resume=True)
    try:
        examples, rows, seconds = test_samples(run, config, args.samples, args.temperature, args.max_test)
    finally:
        release_run_dir(lock)
    task = make_task(config)
    questions = [
        ScoredQuestion(ex, group, [0.0] * len(group), star.steps_checked(task, ex, [r.text for r in group]))
        for ex, group in zip(examples, rows)
    ]
    metrics = {k: v for k, v in best_of_k_metrics(questions, k_values(args.samples)).items() if "verifier" not in k}
    greedy = rundir.read_json(run / "summary.json")["iterations"][-1]["accuracy"]
    return {**metrics, "greedy_accuracy": greedy, "sample_seconds": seconds}


def spread(values: list[float]) -> dict:
    return {"mean": sum(values) / len(values), "min": min(values), "max": max(values)}


def aggregate(per_seed: dict, iterations: int, n: int) -> dict:
    table = {}
    for t in range(1, iterations + 1):
        seeds = [per_seed[s]["verifiers"][str(t)] for s in per_seed]
        table[str(t)] = {key: spread([m[key] for m in seeds]) for key in seeds[0]}
    return table


def print_table(table: dict, n: int, per_seed: dict) -> list[str]:
    ks = k_values(n)
    first = next(iter(table.values()))
    lines = [
        "| metric | " + " | ".join(f"k={k}" for k in ks) + " |",
        "|---|" + "---|" * len(ks),
        f"| pass@1 (sampled) | {first['pass@1']['mean']:.1%} |" + " |" * (len(ks) - 1),
    ]
    for name in ("maj", "pass"):
        lines.append(f"| {name}@k | " + " | ".join(f"{first[f'{name}@{k}']['mean']:.1%}" for k in ks) + " |")
    if "checked_maj@1" in first:  # the task's step check: vote among the samples whose steps check
        cells = " | ".join(f"{first[f'checked_maj@{k}']['mean']:.1%}" for k in ks)
        lines.append(f"| maj@k of the samples whose steps check | {cells} |")
    for t, row in table.items():
        cells = " | ".join(f"{row[f'verifier@{k}']['mean']:.1%}" for k in ks)
        lines.append(f"| Verifier@k, pairs of {t} iteration(s) ({row['num_pairs']['mean']:.0f} pairs) | {cells} |")
    sample = sum(s["sample_seconds"] for s in per_seed.values()) / len(per_seed)
    score = sum(r["score_seconds"]["mean"] for r in table.values()) / len(table)
    train = sum(r["train_seconds"]["mean"] for r in table.values()) / len(table)
    lines.append(
        f"\nseconds (mean per seed): sampling {n} per question {sample:.0f}, scoring them {score:.0f}, "
        f"training one verifier {train:.0f}"
    )
    print("\n".join(lines))
    return lines


def print_generators(generators: dict, n: int) -> list[str]:
    """Step 4 by SFT vs by RPO: greedy accuracy and the sampled metrics of each run's last generator."""
    ks = k_values(n)
    majs = " | ".join(f"maj@{k}" for k in ks[1:])
    lines = ["", f"| generator (step 4) | greedy | pass@1 | {majs} | maj@{n}, steps checked | pass@{n} |"]
    lines.append("|---|" + "---|" * (len(ks) + 3))
    for name, seeds in generators.items():
        mean = {key: spread([m[key] for m in seeds.values()])["mean"] for key in ("greedy_accuracy", "pass@1")}
        majs = " | ".join(f"{spread([m[f'maj@{k}'] for m in seeds.values()])['mean']:.1%}" for k in ks[1:])
        top = spread([m[f"pass@{n}"] for m in seeds.values()])["mean"]
        checked = spread([m[f"checked_maj@{n}"] for m in seeds.values()])["mean"]
        head = f"| STaR, {name} | {mean['greedy_accuracy']:.1%} | {mean['pass@1']:.1%}"
        lines.append(f"{head} | {majs} | {checked:.1%} | {top:.1%} |")
    print("\n".join(lines))
    return lines


def plot(table: dict, n: int, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = k_values(n)
    first = next(iter(table.values()))
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(ks, [first["pass@1"]["mean"]] * len(ks), "k:", label="pass@1")
    ax.plot(ks, [first[f"maj@{k}"]["mean"] for k in ks], "s-", label="maj@k")
    ax.plot(ks, [first[f"pass@{k}"]["mean"] for k in ks], "^--", color="grey", label="pass@k")
    if "checked_maj@1" in first:
        ax.plot(ks, [first[f"checked_maj@{k}"]["mean"] for k in ks], "D-", label="maj@k, steps checked")
    for t, row in table.items():
        ax.plot(ks, [row[f"verifier@{k}"]["mean"] for k in ks], "o-", label=f"Verifier@k ({t} it.)")
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_xlabel("k (samples per question)")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"V-STaR best of k, {title} (mean over seeds)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default=str(ROOT / "recipes" / "word_problems.yaml"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--samples", type=int, default=16, help="n samples per test question (k up to n)")
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--max-test", type=int, default=0, help="score at most this many test questions (0: all)")
    parser.add_argument("--share-m0", action="store_true", help="later seeds reuse the first seed's M0")
    parser.add_argument("--set", nargs="*", default=[], help="overrides for the STaR runs")
    parser.add_argument("--verifier-set", nargs="*", default=[], help="verifier.* overrides")
    parser.add_argument("--out", default=str(ROOT / "runs" / "vbench"))
    parser.add_argument("--name", default="verifier")
    parser.add_argument(
        "--rpo", action="store_true", help="also a STaR run per seed with train.objective=rpo: its generator's row"
    )
    args = parser.parse_args()
    per_seed, m0 = {}, None
    for seed in args.seeds:
        per_seed[str(seed)] = one_seed(args, seed, m0)
        if args.share_m0 and m0 is None:
            m0 = rundir.read_json(Path(args.out) / f"star_s{seed}" / "summary.json")["base_model"]
    table = aggregate(per_seed, args.iterations, args.samples)
    lines = print_table(table, args.samples, per_seed)
    generators = {}
    if args.rpo:
        rpo = {str(seed): generator_row(args, seed, m0, "rpo") for seed in args.seeds}
        # SFT's sampled metrics (pass@1, maj@k, pass@k) are the same in every verifier's entry: take the first
        sft = {
            seed: {**per_seed[seed]["verifiers"]["1"], "greedy_accuracy": per_seed[seed]["greedy_accuracy"]}
            for seed in per_seed
        }
        generators = {"sft": sft, "rpo": rpo}
        lines += print_generators(generators, args.samples)
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {"args": vars(args), "per_seed": per_seed, "table": table, "generators": generators, "markdown": lines}
    atomic.atomic_write_json(RESULTS / f"{args.name}.json", result)
    plot(table, args.samples, RESULTS / f"{args.name}.png", Path(args.recipe).stem)
    print(f"results: {RESULTS / (args.name + '.json')}, plot: {RESULTS / (args.name + '.png')}")


if __name__ == "__main__":
    main()
