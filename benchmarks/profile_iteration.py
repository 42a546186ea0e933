"""Where one default STaR iteration spends its time: phases, Python functions, torch operators.

Runs iteration 1 of recipes/arithmetic.yaml (M0 from the cache, trained first if missing) under
cProfile, then profiles ``--train-steps`` training steps of the same data with torch.profiler. Prints
the phase seconds, the top functions by own time, and the top operators; writes them as JSON.

Run:  .venv/bin/python benchmarks/profile_iteration.py [--top 15] [--set train.packing=false]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def top_functions(profile: cProfile.Profile, top: int) -> list[dict]:
    stats = pstats.Stats(profile)
    rows = []
    for (file, line, name), (_, calls, own, cumulative, _) in stats.stats.items():
        where = f"{Path(file).parent.name}/{Path(file).name}:{line}({name})" if line else name
        rows.append({"function": where, "calls": calls, "own_s": round(own, 2), "cumulative_s": round(cumulative, 2)})
    return sorted(rows, key=lambda r: -r["own_s"])[:top]


def top_operators(packing: bool, steps: int, top: int) -> list[dict]:
    import torch
    from torch.profiler import ProfilerActivity, profile

    from benchmarks.speed_training import default_features
    from selftaught.models.embedded import build_tiny_llama
    from selftaught.training.sft import collator_for

    features, tokenizer, config = default_features(REPO / "recipes" / "arithmetic.yaml")
    c = config.model.base
    model = build_tiny_llama(tokenizer, c.num_layers, c.hidden_size, c.num_heads, 512, seed=0).train()
    collate = collator_for(model, features, tokenizer.pad_token_id, packing)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.train.learning_rate)
    import random

    random.Random(0).shuffle(features)  # the Trainer samples random batches; the split is sorted by length
    size = config.train.batch_size
    batches = [collate(features[k : k + size]) for k in range(0, steps * size, size)]
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for batch in batches:
            model(**batch, use_cache=False).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:top]
    return [{"operator": e.key, "calls": e.count, "self_ms": round(e.self_cpu_time_total / 1e3, 1)} for e in events]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--train-steps", type=int, default=20)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "profile_iteration.json"))
    args = parser.parse_args()
    import torch

    from selftaught.config import load_config
    from selftaught.loop import run_star

    torch.set_num_threads(2)
    config = load_config(REPO / "recipes" / "arithmetic.yaml", ["loop.iterations=1", *args.overrides])
    from selftaught.common.ui import SILENT
    from selftaught.tasks import make_task
    from selftaught.training.base_model import ensure_base_model

    ensure_base_model(config, make_task(config), SILENT)  # M0 is not part of the iteration profiled
    profiler = cProfile.Profile()
    with tempfile.TemporaryDirectory() as tmp:
        profiler.enable()
        run_star(config, Path(tmp) / "run")
        profiler.disable()
        phases = json.loads((Path(tmp) / "run" / "iter_001" / "metrics.json").read_text())["seconds"]
    functions = top_functions(profiler, args.top)
    operators = top_operators(config.train.packing, args.train_steps, args.top)
    print("phase seconds:", phases)
    print(f"\n{'own s':>7} {'cum s':>7} {'calls':>8}  function")
    for r in functions:
        print(f"{r['own_s']:>7} {r['cumulative_s']:>7} {r['calls']:>8}  {r['function']}")
    print(f"\n{args.train_steps} training steps under torch.profiler:\n{'self ms':>9} {'calls':>7}  operator")
    for r in operators:
        print(f"{r['self_ms']:>9} {r['calls']:>7}  {r['operator']}")
    payload = {"overrides": args.overrides, "phase_seconds": phases, "functions": functions, "operators": operators}
    Path(args.out).write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
