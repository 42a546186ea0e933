"""Where a packed training step's time goes, and whether wider packed rows or eager attention help.

On the default run's data (`speed_training.default_features`), side by side in one process over
alternating rounds: forward + backward + AdamW for the same 12 batches of 64 examples, padded vs packed
into rows as wide as the longest example (``train.packing``, factor 1.0) or 1.5x / 2x as wide (fewer
rows, less padding, but more attention per row), with SDPA or eager attention. Then a torch profile of
the packed SDPA step: the share of matmuls (and their GFLOP/s against this machine's fp32 matmul peak),
attention and elementwise ops, which says what is left to gain once padding is gone.

Run:  .venv/bin/python benchmarks/packing_rows.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO))
VARIANTS = {  # name: (attention, row width factor or None for padded)
    "padded, sdpa": ("sdpa", None),
    "packed 1.0x, sdpa": ("sdpa", 1.0),
    "packed 1.0x, eager": ("eager", 1.0),
    "packed 1.5x, sdpa": ("sdpa", 1.5),
    "packed 1.5x, eager": ("eager", 1.5),
    "packed 2.0x, eager": ("eager", 2.0),
}


def packed_batch(features: list[dict], factor: float, pad_id: int, additive: bool) -> dict:
    """`PackCollator`'s batch with rows ``factor`` times as wide as the longest example."""
    from selftaught.training import packing

    collate = packing.PackCollator(pad_id, additive_mask=additive)
    if factor == 1.0:
        return collate(features)
    # a placeholder as wide as the row sets the width; its row is dropped after collating
    width = int(max(len(f["input_ids"]) for f in features) * factor)
    widest = {"input_ids": [pad_id] * width, "labels": [-100] * width, "position_ids": list(range(width))}
    batch = collate([widest, *features])
    keep = [r for r in range(batch["input_ids"].shape[0]) if not (batch["input_ids"][r] == pad_id).all()]
    return {key: value[keep] for key, value in batch.items()}


def step_seconds(batches: dict[str, list[dict]], attention: dict[str, str], config, tokenizer, rounds: int):
    import torch

    from selftaught.models.embedded import build_tiny_llama

    c = config.model.base
    models = {}
    for name in batches:
        model = build_tiny_llama(tokenizer, c.num_layers, c.hidden_size, c.num_heads, 512, seed=0)
        model.config._attn_implementation, model.config.use_cache = attention[name], False
        model.train()
        models[name] = (model, torch.optim.AdamW(model.parameters(), lr=1e-4))
    times: dict[str, list[float]] = {name: [] for name in batches}
    for r in range(rounds):
        for name in list(batches) if r % 2 == 0 else list(reversed(batches)):
            model, optimizer = models[name]
            start = time.perf_counter()
            for batch in batches[name]:
                model(**batch).loss.backward()
                optimizer.step()
                optimizer.zero_grad()
            times[name].append(time.perf_counter() - start)
    return times, models


def profile_shares(model, optimizer, batches: list[dict], peak_gflops: float, flops_per_step: float) -> dict:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for batch in batches:
            model(**batch).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    mm = sum(e.self_cpu_time_total for e in events if e.key in ("aten::mm", "aten::addmm", "aten::bmm"))
    attention = sum(e.self_cpu_time_total for e in events if "scaled_dot_product" in e.key or "softmax" in e.key)
    top = sorted(events, key=lambda e: -e.self_cpu_time_total)[:8]
    matmul_gflops = flops_per_step * len(batches) / (mm / 1e6) / 1e9
    return {
        "matmul_share": round(mm / total, 3),
        "attention_share": round(attention / total, 3),
        "other_share": round(1 - (mm + attention) / total, 3),
        "matmul_gflops": round(matmul_gflops, 1),
        "matmul_pct_of_peak": round(100 * matmul_gflops / peak_gflops, 1),
        "top_ops": [(e.key, round(e.self_cpu_time_total / total, 3)) for e in top],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", type=int, default=12)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "packing_rows.json"))
    args = parser.parse_args()
    import torch
    from speed_training import default_features, matmul_peak_gflops

    from selftaught.training.sft import PadCollator

    torch.set_num_threads(2)
    features, tokenizer, config = default_features(REPO / "recipes" / "arithmetic.yaml")
    random.Random(0).shuffle(features)
    size, pad_id = config.train.batch_size, tokenizer.pad_token_id
    chunks = [features[k * size : (k + 1) * size] for k in range(args.batches)]
    batches, attention = {}, {}
    for name, (impl, factor) in VARIANTS.items():
        attention[name] = impl
        batches[name] = [
            PadCollator(pad_id)(chunk) if factor is None else packed_batch(chunk, factor, pad_id, impl == "eager")
            for chunk in chunks
        ]
    times, models = step_seconds(batches, attention, config, tokenizer, args.rounds)
    real = sum(len(f["input_ids"]) for chunk in chunks for f in chunk)
    base = min(times["padded, sdpa"])
    rows = []
    for name in VARIANTS:
        tokens = sum(int(b["input_ids"].numel()) for b in batches[name])
        seconds = min(times[name])
        rows.append({"variant": name, "seconds": round(seconds, 2), "speedup_vs_padded": round(base / seconds, 2),
                     "batch_tokens": tokens, "padding_share": round(1 - real / tokens, 3)})  # fmt: skip
    peak = matmul_peak_gflops()
    params = sum(p.numel() for p in models["padded, sdpa"][0].parameters())
    flops_per_step = 6 * params * sum(int(b["input_ids"].numel()) for b in batches["packed 1.0x, sdpa"]) / args.batches
    model, optimizer = models["packed 1.0x, sdpa"]
    shares = profile_shares(model, optimizer, batches["packed 1.0x, sdpa"][:4], peak, flops_per_step)
    print(f"{args.batches} batches of {size}, {args.rounds} rounds; fp32 matmul peak {peak:.0f} GFLOP/s")
    print(f"{'variant':20} {'seconds':>8} {'x padded':>8} {'batch tokens':>12} {'padding':>8}")
    for r in rows:
        print(f"{r['variant']:20} {r['seconds']:>8} {r['speedup_vs_padded']:>8} {r['batch_tokens']:>12} "
              f"{r['padding_share']:>8}")  # fmt: skip
    print(f"packed 1.0x sdpa step: matmuls {shares['matmul_share']:.0%} of time at {shares['matmul_gflops']} GFLOP/s "
          f"({shares['matmul_pct_of_peak']}% of peak), attention {shares['attention_share']:.0%}, "
          f"other {shares['other_share']:.0%}")  # fmt: skip
    payload = {"batches": args.batches, "batch_size": size, "rounds": args.rounds, "matmul_peak_gflops": round(peak, 1),
               "rows": rows, "profile_packed_sdpa": shares}  # fmt: skip
    Path(args.out).write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
