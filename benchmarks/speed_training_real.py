"""Training speed on real pretrained models: LoRA and full fine-tuning under bf16 autocast (`train_sft`,
the loop's path, packed batches), on STaR-shaped examples (GSM8K test question -> gold solution, no
few-shot prefix, as the loop stores them), each in its own process.

Reported: real tokens/s, model FLOP/s as a share of this machine's bf16 matmul peak (a 2048^2 matmul on
the same threads) and the process's peak RSS. FLOPs per token: 6 N for full fine-tuning and 4 N for LoRA
(no weight gradients for the frozen weights; the adapters are negligible), N = parameters doing matmuls
(the tied output layer counted once), plus attention, 12 L d S (S = half the example length); PaLM
appendix B.

Run:  .venv/bin/python benchmarks/speed_training_real.py --model smollm2 --steps 6
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
MODES = ("lora", "full")


def worker(model_path: str, mode: str, steps: int, batch_size: int) -> None:
    import torch
    from speed_real import task_config

    from selftaught.config import TrainConfig
    from selftaught.models import load_model
    from selftaught.tasks import make_task
    from selftaught.training.sft import SftJob, add_lora, encode_pairs, train_sft

    torch.set_num_threads(2)
    task = make_task(task_config(model_path, 256, "fp32", 8))
    lm = load_model(model_path, task_config(model_path, 256, "fp32", 8).model)
    examples = task.load("test")[: steps * batch_size]
    pairs = [(lm.render(task.prompt(ex, few_shot=False)), " " + dict(ex.meta)["solution"]) for ex in examples]
    features = encode_pairs(lm.tokenizer, lm.scheme, pairs)
    model = add_lora(lm.model, 16, 32, 0.0, "all-linear") if mode == "lora" else lm.model
    settings = TrainConfig(batch_size=batch_size, learning_rate=1e-4, save_every_steps=0, precision="bf16")
    tokens = sum(len(f["input_ids"]) for f in features)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        log = train_sft(model, features, lm.tokenizer.pad_token_id, SftJob(tmp, steps, settings, seed=0))
        seconds = time.perf_counter() - start
    config = lm.model.config
    params = sum(p.numel() for n, p in lm.model.named_parameters() if "lora_" not in n)
    print(json.dumps({"seconds": seconds, "tokens": tokens, "params": params, "layers": config.num_hidden_layers,
                      "hidden": config.hidden_size, "first_loss": log[0]["loss"], "last_loss": log[-1]["loss"],
                      "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2", help="smollm2 | gemma3 | a model folder | a .gguf file")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--worker", choices=MODES)
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "src"))
    if args.worker:
        worker(args.model, args.worker, args.steps, args.batch_size)
        return
    from speed_real import model_folder
    from speed_training import matmul_peak_gflops

    path = model_folder(args.model)
    peak = matmul_peak_gflops(dtype="bfloat16")
    rows = []
    for mode in MODES:
        cmd = [sys.executable, __file__, "--worker", mode, "--model", path, "--steps", str(args.steps)]
        done = subprocess.run([*cmd, "--batch-size", str(args.batch_size)], capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{mode} failed:\n{done.stderr[-3000:]}")
        r = json.loads(done.stdout.strip().splitlines()[-1])
        mean_len = r["tokens"] / (args.steps * args.batch_size)
        flops = (6 if mode == "full" else 4) * r["params"] + 12 * r["layers"] * r["hidden"] * mean_len / 2
        rate = r["tokens"] / r["seconds"]
        rows.append({"mode": mode, "seconds": round(r["seconds"], 1), "tokens_per_second": round(rate),
                     "pct_of_bf16_peak": round(100 * rate * flops / (peak * 1e9), 1),
                     "first_loss": round(r["first_loss"], 3), "last_loss": round(r["last_loss"], 3),
                     "peak_rss_gb": round(r["peak_rss_gb"], 2), "mean_tokens": round(mean_len, 1)})  # fmt: skip
    print(f"{args.model}: {args.steps} steps of {args.batch_size}, bf16 autocast; bf16 matmul peak {peak:.0f} GFLOP/s")
    print(f"{'mode':6}{'sec':>7}{'tok/s':>8}{'% peak':>8}{'loss 1st':>9}{'last':>7}{'RSS GB':>8}")
    for r in rows:
        print(f"{r['mode']:6}{r['seconds']:>7}{r['tokens_per_second']:>8}{r['pct_of_bf16_peak']:>8}"
              f"{r['first_loss']:>9}{r['last_loss']:>7}{r['peak_rss_gb']:>8}")  # fmt: skip
    out = Path(args.out or REPO / "benchmarks" / "results" / f"speed_training_{Path(args.model).stem}.json")
    payload = {"model": args.model, "steps": args.steps, "batch_size": args.batch_size}
    out.write_text(json.dumps(payload | {"bf16_peak_gflops": round(peak), "rows": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
