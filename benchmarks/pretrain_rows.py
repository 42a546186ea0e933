"""Word-problem M0 pretraining: stream rows (plain causal attention) against packed documents (block mask).

Same model (the recipe's M0 shape, fresh weights), same documents, same optimizer; one training step
timed over several repeats for each layout, side by side in one process. Prints real tokens/s and
the ratio; writes benchmarks/results/pretrain_rows.json.

Run:  .venv/bin/python benchmarks/pretrain_rows.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from selftaught.config import load_config
    from selftaught.models.bpe import train_bpe_tokenizer
    from selftaught.models.embedded import build_tiny_llama
    from selftaught.tasks import make_task
    from selftaught.training.packing import PackCollator
    from selftaught.training.text_base_model import MAX_POSITIONS, ROW_TOKENS, pretraining_documents, stream_rows

    config = load_config(str(REPO / "recipes" / "word_problems.yaml"), ["model.base.steps=20"])
    c = config.model.base
    documents = pretraining_documents(config, make_task(config))
    tokenizer = train_bpe_tokenizer(documents, config.task.word_problems.vocab_size)
    torch.manual_seed(0)
    model = build_tiny_llama(tokenizer, c.num_layers, c.hidden_size, c.num_heads, MAX_POSITIONS, config.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    rows = stream_rows(tokenizer, documents, ROW_TOKENS)[: c.batch_size]
    stream_batch = {"input_ids": torch.tensor(rows), "labels": torch.tensor(rows)}
    real = sum(len(r) for r in rows)
    # the same tokens as whole documents, packed with a block-diagonal mask (the SFT path)
    ids, docs = tokenizer(documents)["input_ids"], []
    while sum(len(d["input_ids"]) for d in docs) < real:
        doc = ids[len(docs)] + [tokenizer.eos_token_id]
        docs.append({"input_ids": doc, "labels": doc})
    packed_batch = PackCollator(tokenizer.pad_token_id)(docs)

    def step(batch: dict) -> None:
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    results = {}
    for name, batch, tokens in [
        ("packed documents, block mask", packed_batch, sum(len(d["input_ids"]) for d in docs)),
        ("stream rows, causal", stream_batch, real),
    ]:
        step(batch)  # warm-up
        start = time.perf_counter()
        for _ in range(args.repeats):
            step(batch)
        seconds = (time.perf_counter() - start) / args.repeats
        results[name] = {"shape": list(batch["input_ids"].shape), "seconds_per_step": round(seconds, 3),
                         "real_tokens_per_second": round(tokens / seconds)}  # fmt: skip
        print(f"{name:30} {str(tuple(batch['input_ids'].shape)):12} {seconds:6.3f} s/step "
              f"{tokens / seconds:8.0f} real tokens/s")  # fmt: skip
    names = list(results)
    ratio = results[names[1]]["real_tokens_per_second"] / results[names[0]]["real_tokens_per_second"]
    print(f"stream / packed: {ratio:.2f}x real tokens/s")
    out = REPO / "benchmarks" / "results" / "pretrain_rows.json"
    out.write_text(json.dumps({"results": results, "ratio": round(ratio, 2), "repeats": args.repeats}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
