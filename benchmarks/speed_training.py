"""Training speed on the default run's data: padded vs packed batches (and transformers' flattening).

The data is the default recipe's iteration-1 training set shape: every training question of
recipes/arithmetic.yaml (1-10 digit sums) with its gold rationale, encoded with digit positions, on
the embedded model's architecture (4 layers, 128 wide). Each layout trains the same model from the
same seed for the same steps with `train_sft` (the loop's path), side by side in one process, in
alternating order over ``--rounds`` rounds. Reported: real (non-padding) tokens/s, the batch share
that is padding, the first-step loss (the same examples, so it must agree), and model FLOP/s as a
share of this machine's measured matmul peak (a 2048^2 matmul on the same threads) in the layout's
precision: `packed-bf16` trains under bf16 autocast (`train.precision=bf16`), the others in fp32.

FLOPs per real token: 6 N (N = parameters doing matmuls, the tied LM head included) plus attention,
12 L d S (S = mean attended length, half the example length), the PaLM appendix B count.

Run:  .venv/bin/python benchmarks/speed_training.py [--steps 30] [--rounds 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
LAYOUTS = ("padded", "packed", "packed-eager", "flattened", "packed-bf16")


def matmul_peak_gflops(size: int = 2048, repeats: int = 5, dtype: str = "float32") -> float:
    import torch

    a, b = (torch.randn(size, size, dtype=getattr(torch, dtype)) for _ in range(2))
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def _precision(layout: str) -> str:
    """bf16 layouts train under bf16 autocast (fp32 weights), on CPU too; the rest in fp32."""
    return "bf16" if layout.endswith("bf16") else "fp32"


def default_features(recipe: Path) -> tuple[list[dict], object, object]:
    from selftaught.config import load_config
    from selftaught.models.embedded import build_char_tokenizer
    from selftaught.models.positions import make_scheme
    from selftaught.tasks import make_task
    from selftaught.training.sft import encode_pairs

    config = load_config(recipe)
    task = make_task(config)
    tokenizer = build_char_tokenizer()
    scheme = make_scheme(config.model.base.positions, tokenizer)
    pairs = [(task.prompt(e), task.gold_completion(e)) for e in task.load("train")]
    features = encode_pairs(tokenizer, scheme, pairs, max_period=config.model.base.max_period, seed=0)
    return features, tokenizer, config


def train_once(layout: str, features, tokenizer, config, steps: int, folder: Path) -> dict:
    import torch
    from transformers import DataCollatorWithFlattening

    from selftaught.models.embedded import build_tiny_llama
    from selftaught.training import sft

    c = config.model.base
    model = build_tiny_llama(tokenizer, c.num_layers, c.hidden_size, c.num_heads, 512, seed=0)
    model.config._attn_implementation = "eager" if layout == "packed-eager" else "sdpa"
    data = features
    original = sft.collator_for
    if layout == "flattened":  # the library collator on its own positions (digit ids are not sequential)
        data = [{k: v for k, v in f.items() if k != "position_ids"} for f in features]
        sft.collator_for = lambda *a, **k: DataCollatorWithFlattening(return_position_ids=True, separator_id=-100)
    torch.manual_seed(0)
    start = time.perf_counter()
    try:
        settings = dataclasses.replace(
            config.train, save_every_steps=0, packing=layout != "padded", precision=_precision(layout)
        )
        log = sft.train_sft(model, data, tokenizer.pad_token_id, sft.SftJob(folder / layout, steps, settings, seed=0))
    finally:
        sft.collator_for = original
    seconds = time.perf_counter() - start
    params = sum(p.numel() for p in model.parameters())
    return {"seconds": seconds, "first_loss": log[0]["loss"], "params": params}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default=str(REPO / "recipes" / "arithmetic.yaml"))
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--layouts", nargs="+", default=list(LAYOUTS), choices=LAYOUTS)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "speed_training.json"))
    args = parser.parse_args()
    import torch

    from selftaught.training.packing import padding_share

    torch.set_num_threads(2)
    features, tokenizer, config = default_features(Path(args.recipe))
    batch = config.train.batch_size
    # the Trainer samples random batches; the share over shuffled consecutive batches is the same in expectation
    import random

    shuffled = list(features)
    random.Random(0).shuffle(shuffled)
    share = padding_share(shuffled, batch)
    real_per_step = share["real_tokens"] / (len(features) / batch)
    peak = {"fp32": matmul_peak_gflops(), "bf16": matmul_peak_gflops(dtype="bfloat16")}
    mean_len = share["real_tokens"] / len(features)
    c = config.model.base
    times: dict[str, list[float]] = {layout: [] for layout in args.layouts}
    info: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            order = args.layouts if r % 2 == 0 else list(reversed(args.layouts))
            for layout in order:
                result = train_once(layout, features, tokenizer, config, args.steps, Path(tmp) / str(r))
                times[layout].append(result["seconds"])
                info[layout] = result
    params = info[args.layouts[0]]["params"]
    flops_per_token = 6 * params + 12 * c.num_layers * c.hidden_size * mean_len / 2
    rows = []
    base = min(times[args.layouts[0]])
    for layout in args.layouts:
        seconds = min(times[layout])
        tokens_per_second = real_per_step * args.steps / seconds
        rows.append(
            {
                "layout": layout,
                "seconds": round(seconds, 2),
                "all_seconds": [round(t, 2) for t in times[layout]],
                "real_tokens_per_second": round(tokens_per_second),
                "speedup_vs_padded": round(base / seconds, 2),
                "padding_share": round(share["padded_share"] if layout == "padded" else share["packed_share"], 3),
                "first_step_loss": round(info[layout]["first_loss"], 5),
                # each layout against the matmul peak of its own precision
                "pct_of_matmul_peak": round(
                    100 * tokens_per_second * flops_per_token / (peak[_precision(layout)] * 1e9), 1
                ),
            }
        )
    print(f"default run's training set: {len(features)} examples, {mean_len:.1f} tokens each, batch {batch}, "
          f"{args.steps} steps x {args.rounds} rounds; model {params / 1e6:.2f}M params; "
          f"matmul peak fp32 {peak['fp32']:.0f}, bf16 {peak['bf16']:.0f} GFLOP/s")  # fmt: skip
    print(f"{'layout':13} {'seconds':>8} {'real tok/s':>10} {'x padded':>8} {'padding':>8} {'loss@1':>8} {'% peak':>7}")
    for r in rows:
        print(f"{r['layout']:13} {r['seconds']:>8} {r['real_tokens_per_second']:>10} {r['speedup_vs_padded']:>8} "
              f"{r['padding_share']:>8} {r['first_step_loss']:>8} {r['pct_of_matmul_peak']:>7}")  # fmt: skip
    payload = {"examples": len(features), "mean_tokens": mean_len, "batch_size": batch, "steps": args.steps,
               "rounds": args.rounds, "parameters": params, "matmul_peak_gflops": round(peak["fp32"], 1),
               "matmul_peak_bf16_gflops": round(peak["bf16"], 1),
               "flops_per_real_token": flops_per_token, "rows": rows}  # fmt: skip
    Path(args.out).write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
