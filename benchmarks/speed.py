"""Generation speed on few-shot GSM8K-shaped prompts: selftaught's `hf` and `sampler` backends (shared
few-shot prefix encoded once) against plain `model.generate` on the full prompts, greedy, same model,
prompts, budget and batch size, each in its own process; the texts must be identical.

The model is a random-weight Llama (default ~8M parameters) with a byte-level BPE tokenizer trained
here; the prompt is the STaR GSM8K few-shot prompt (../shared) or, without it, a GSM8K-shaped stand-in
of the same length. Stops are off in all three (random weights never write an answer), so every row
generates the full budget: the comparison is prefix reuse alone.

Run:  .venv/bin/python benchmarks/speed.py [--questions 32] [--budget 64] [--batch-size 16]
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
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared" / "data" / "gsm8k"
VARIANTS = ("generate", "hf", "sampler")


def prompts_and_corpus(questions: int) -> tuple[list[str], list[str], str]:
    if (SHARED / "prompts.txt").is_file():
        prefix = (SHARED / "prompts.txt").read_text().strip()
        rows = [json.loads(line) for line in (SHARED / "test.jsonl").read_text().splitlines()[:questions]]
        source = "STaR GSM8K few-shot prompt + GSM8K test questions (../shared)"
    else:
        from tests.test_real_models import GSM_ROWS

        block = "\n\n".join(f"Q: {q}\nA: {a}" for q, a in GSM_ROWS)
        prefix = "\n\n".join([block] * 6)
        rows = [{"question": GSM_ROWS[k % len(GSM_ROWS)][0] + f" ({k})"} for k in range(questions)]
        source = "GSM8K-shaped stand-in prompt (../shared absent)"
    prompts = [f"{prefix}\n\nQ: {row['question']}\nA:" for row in rows]
    return prompts, [prefix, *prompts], source


def build(folder: Path, questions: int, hidden: int, layers: int) -> dict:
    from transformers import LlamaConfig, LlamaForCausalLM

    from tests.tiny_hf import build_bpe_tokenizer

    prompts, corpus, source = prompts_and_corpus(questions)
    tokenizer = build_bpe_tokenizer(corpus, vocab_size=2048)
    import torch

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 8 // 3, num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // 64), num_key_value_heads=max(1, hidden // 64),
        max_position_embeddings=4096, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
    )  # fmt: skip
    model = LlamaForCausalLM(config)
    model.save_pretrained(folder / "model")
    tokenizer.save_pretrained(folder / "model")
    (folder / "prompts.json").write_text(json.dumps(prompts))
    params = sum(p.numel() for p in model.parameters())
    tokens = sum(len(tokenizer(p)["input_ids"]) for p in prompts) / len(prompts)
    return {"source": source, "parameters": params, "prompt_tokens_mean": round(tokens, 1)}


def worker(folder: Path, variant: str, budget: int, batch_size: int) -> None:
    """One variant in this process: prints {"seconds", "tokens", "texts"} as JSON."""
    import torch

    from selftaught.config import ModelConfig
    from selftaught.generation import Generator
    from selftaught.generation.sampler import hf_generate_batch
    from selftaught.models import load_model

    torch.set_num_threads(2)
    prompts = json.loads((folder / "prompts.json").read_text())
    lm = load_model(folder / "model", ModelConfig(chat_template="off"))
    start = time.perf_counter()
    if variant == "generate":  # the library baseline: full prompts, left padding, no prefix reuse
        texts = []
        for k in range(0, len(prompts), batch_size):
            texts += hf_generate_batch(lm.model, lm.tokenizer, prompts[k : k + batch_size], budget)
        tokens = None
    else:
        generator = Generator(lm, variant, batch_size)
        texts = [t[0] for t in generator.complete(prompts, [budget] * len(prompts))]
        tokens = generator.tokens_generated
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "tokens": tokens, "texts": texts}))


def run_variant(folder: Path, variant: str, budget: int, batch_size: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", variant, "--folder", str(folder)]
    cmd += ["--budget", str(budget), "--batch-size", str(batch_size)]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_seconds"] = time.perf_counter() - start
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=32)
    parser.add_argument("--budget", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--worker", choices=VARIANTS)
    parser.add_argument("--folder")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "speed_generation.json"))
    args = parser.parse_args()
    if args.worker:
        worker(Path(args.folder), args.worker, args.budget, args.batch_size)
        return
    with tempfile.TemporaryDirectory() as tmp:
        info = build(Path(tmp), args.questions, args.hidden, args.layers)
        results = {v: run_variant(Path(tmp), v, args.budget, args.batch_size) for v in VARIANTS}
    base = results["generate"]
    rows = []
    for variant in VARIANTS:
        r = results[variant]
        tokens = args.budget * args.questions if r["tokens"] is None else r["tokens"]
        rows.append(
            {
                "variant": variant,
                "seconds": round(r["seconds"], 2),
                "process_seconds": round(r["process_seconds"], 2),
                "new_tokens_per_second": round(tokens / r["seconds"], 1),
                "speedup_vs_generate": round(base["seconds"] / r["seconds"], 2),
                "identical_texts": sum(a == b for a, b in zip(r["texts"], base["texts"])),
            }
        )
    print(f"{info['source']}: {args.questions} prompts of {info['prompt_tokens_mean']:.0f} tokens, budget "
          f"{args.budget}, batch {args.batch_size}, random Llama {info['parameters'] / 1e6:.1f}M params")  # fmt: skip
    print(f"{'variant':10} {'seconds':>8} {'process s':>9} {'new tok/s':>10} {'x generate':>10} {'identical':>9}")
    for r in rows:
        print(f"{r['variant']:10} {r['seconds']:>8} {r['process_seconds']:>9} {r['new_tokens_per_second']:>10} "
              f"{r['speedup_vs_generate']:>10} {r['identical_texts']:>6}/{args.questions}")  # fmt: skip
    payload = {**info, "questions": args.questions, "budget": args.budget, "batch_size": args.batch_size, "rows": rows}
    Path(args.out).write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
