"""GPU table: generation tokens/s and bf16 training MFU on random-weight models of real shapes, in one call.

Two shapes, built here from code (no hub, no internet, no .cache needed), random weights, saved with
`save_pretrained` into a temporary folder with a tokenizer:

* ``qwen2.5-0.5b``: Qwen2.5-0.5B's shape (hidden 896, 24 layers, 14 heads, 2 KV heads, MLP 4864,
  vocabulary 151,936, tied output layer);
* ``gemma3-270m``: Gemma 3 270M's shape (the converted GGUF's config.json: hidden 640, 18 layers, 4 heads
  of 256, 1 KV head, MLP 2048, vocabulary 262,144, a 512-slot sliding window in 5 of every 6 layers).

The tokenizer is a byte-level BPE trained here on the prompt text, its vocabulary padded to the model's
(ids past the trained ones decode to filler words), so random ids decode to text and the stop strings are
checked on real text. With ``--tokenizer auto`` a converted model's own tokenizer under
``.cache/selftaught/base`` is used where its vocabulary is exactly the shape's (Gemma's, when that folder
is there; the device machine gets it only if carried, see below). A tokenizer is always to be had:
transformers itself depends on ``tokenizers``.

(a) Generation, bf16 weights, greedy, 128 new tokens for each of 64 distinct GSM8K-style questions behind a
shared ~1k-token few-shot prefix, GSM8K's stops on (``\\nQ:`` and the ``#### N`` line), one batch of 64:
plain ``model.generate`` on the full prompts (`hf_generate_ids`, no prefix reuse), selftaught's ``hf``
backend (`Generator`: prefix encoded once, its cache reused), its own ``sampler`` backend, and the
``vllm`` backend (`VLLMGenerator`, automatic prefix caching on, in a child process so that it gets the
GPU memory it asks for; "not installed" when vLLM is not importable). Each timed run follows an untimed
warm-up on other prompts, on a fresh generator (the prefix is encoded inside the timed run). Random
weights rarely hit a stop, so rows mostly run the whole budget; tokens are counted, not assumed.

(b) Training: `train_sft` (the loop's path, `SftJob`, packed batches, bf16 autocast) with weights loaded
as the loop loads them (`load_model`, ``model.dtype=auto``: bf16 on CUDA, fp32 on CPU), LoRA (the
project's defaults: r 16, alpha 32, all linear layers) and full fine-tuning, every example the same
length. tokens/s over the steps after the warm-up ones; MFU = 6 N tokens/s / peak, N = the model's
parameters (tied output layer once), peak = a bf16 matmul measured in the same run (8192^3 on CUDA) and,
for reference, the H100 datasheet's dense bf16 989 TFLOP/s. (LoRA does about 4 N of useful work per
token; its 6 N MFU is for comparison with full. The JSON has 4 N and attention FLOPs too.)

Every row records its seconds, tokens, device and the torch/transformers/vllm versions; the JSON is
rewritten after each row, and ``--budget-s`` (default 480) skips the rows that would start after it,
so a slow machine still leaves what it measured.

On a lent GPU: the device tool's ``run``, one call, kind left out (an H100), nothing carried. Its
image's ``python3`` (/opt/torch/.venv) holds torch, transformers, tokenizers, peft, accelerate,
safetensors, pyyaml, typer, rich and regex, all this script imports (the repo's src/ goes on sys.path
here, no install); it lacks datasets, math-verify and vllm, which this script does not need (tested here
with those hidden and transformers 5.17.0, the version seen there). No pip install is possible there (no
network) or needed; do not carry .venv (a CPU build of torch, far over the 64 MiB a call carries). vLLM
cannot travel either (its wheels are hundreds of MB), so its row says "not installed". The call (one
line; its time on an H100 is not measured yet: the 480 s budget caps it, the JSON is rewritten after each row):

    command:   set -o pipefail; PYTHONUNBUFFERED=1 python3 benchmarks/gpu.py --out $OUT/gpu.json 2>&1 |
               tee $OUT/gpu.log
    timeout_s: 560

then copy gpu.json from the reply's ``files_at`` to benchmarks/results/gpu.json and give the machine back.
For Gemma's own tokenizer in the Gemma rows, add to the call
``carry: [".cache/selftaught/base/gguf-gemma-3-270m-q4_k_m-a5fd3b62230aa5ec/tokenizer.json",
".cache/selftaught/base/gguf-gemma-3-270m-q4_k_m-a5fd3b62230aa5ec/tokenizer_config.json"]`` (33 MB).

Here (CPU, tiny shapes of the same architectures, ~30 s; what the test runs):

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/gpu.py --smoke --device cpu --out /tmp/gpu_smoke.json
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

START = time.perf_counter()
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
DEFAULT_OUT = REPO / "benchmarks" / "results" / "gpu.json"
H100_DENSE_BF16_TFLOPS = 989.0  # H100 SXM datasheet, dense (no sparsity)
GEN_VARIANTS = ("generate", "hf", "vllm", "sampler")
TRAIN_MODES = ("lora", "full")

# Qwen2.5-0.5B (config.json of Qwen/Qwen2.5-0.5B): the architecture fields
QWEN = {
    "model_type": "qwen2",
    "hidden_size": 896,
    "intermediate_size": 4864,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "vocab_size": 151936,
    "hidden_act": "silu",
    "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-6,
    "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
    "tie_word_embeddings": True,
    "use_sliding_window": False,
}
# Gemma 3 270M: the architecture fields of .cache/selftaught/base/gguf-gemma-3-270m-q4_k_m-*/config.json
GEMMA = {
    "model_type": "gemma3_text",
    "hidden_size": 640,
    "intermediate_size": 2048,
    "num_hidden_layers": 18,
    "num_attention_heads": 4,
    "num_key_value_heads": 1,
    "head_dim": 256,
    "vocab_size": 262144,
    "hidden_activation": "gelu_pytorch_tanh",
    "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-6,
    "query_pre_attn_scalar": 256,
    "sliding_window": 512,
    "layer_types": (["sliding_attention"] * 5 + ["full_attention"]) * 3,
    "rope_parameters": {
        "full_attention": {"rope_theta": 1000000.0, "rope_type": "default"},
        "sliding_attention": {"rope_theta": 10000.0, "rope_type": "default"},
    },
    "attn_logit_softcapping": None,
    "final_logit_softcapping": None,
    "attention_bias": False,
    "tie_word_embeddings": True,
    "use_bidirectional_attention": False,
}
SHAPES = {"qwen2.5-0.5b": QWEN, "gemma3-270m": GEMMA}
# --smoke: the same architectures, tiny (the Gemma one keeps a sliding window shorter than the prefix)
TINY = {
    "qwen2.5-0.5b": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
                     "num_key_value_heads": 2, "vocab_size": 3000},
    "gemma3-270m": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
                    "num_key_value_heads": 1, "head_dim": 16, "query_pre_attn_scalar": 16, "vocab_size": 4000,
                    "sliding_window": 48, "layer_types": ["sliding_attention", "full_attention"]},
}  # fmt: skip
SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>"]  # ids 0-3, Gemma's order

# GSM8K-style few-shot blocks (the STaR prompt's format: rationale with calculator annotations, "#### N")
SHOTS = [
    ("Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
     "How many clips did Natalia sell altogether in April and May?",
     "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips altogether "
     "in April and May.\n#### 72"),
    ("Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of babysitting. "
     "How much did she earn?",
     "Weng earns 12/60 = $<<12/60=0.2>>0.2 per minute.\nWorking 50 minutes, she earned 0.2 x 50 = "
     "$<<0.2*50=10>>10.\n#### 10"),
    ("Betty is saving money for a new wallet which costs $100. Betty has only half of the money she needs. "
     "Her parents decided to give her $15 for that purpose, and her grandparents twice as much as her "
     "parents. How much more money does Betty need to buy the wallet?",
     "In the beginning, Betty has only 100 / 2 = $<<100/2=50>>50.\nBetty's grandparents gave her 15 * 2 = "
     "$<<15*2=30>>30.\nThis means, Betty needs 100 - 50 - 30 - 15 = $<<100-50-30-15=5>>5 more.\n#### 5"),
    ("Julie is reading a 120-page book. Yesterday, she was able to read 12 pages and today, she read twice "
     "as many pages as yesterday. If she wants to read half of the remaining pages tomorrow, how many pages "
     "should she read?",
     "Julie read 12 x 2 = <<12*2=24>>24 pages today.\nSo she was able to read a total of 12 + 24 = "
     "<<12+24=36>>36 pages since yesterday.\nThere are 120 - 36 = <<120-36=84>>84 pages left to be read.\n"
     "Since she wants to read half of the remaining pages tomorrow, then she should read 84/2 = "
     "<<84/2=42>>42 pages.\n#### 42"),
    ("James writes a 3-page letter to 2 different friends twice a week. How many pages does he write a year?",
     "He writes each friend 3*2 = <<3*2=6>>6 pages a week.\nSo he writes 6*2 = <<6*2=12>>12 pages every "
     "week.\nThat means he writes 12*52 = <<12*52=624>>624 pages a year.\n#### 624"),
    ("Mark has a garden with flowers. He planted plants of three different colors in it. Ten of them are "
     "yellow, and there are 80% more of those in purple. There are only 25% as many green flowers as there "
     "are yellow and purple flowers. How many flowers does Mark have in his garden?",
     "There are 80/100 * 10 = <<80/100*10=8>>8 more purple flowers than yellow flowers.\nSo in Mark's "
     "garden, there are 10 + 8 = <<10+8=18>>18 purple flowers.\nPurple and yellow flowers sum up to 10 + "
     "18 = <<10+18=28>>28 flowers.\nThat means in Mark's garden there were 25/100 * 28 = <<25/100*28=7>>7 "
     "green flowers.\nSo in total Mark has 28 + 7 = <<28+7=35>>35 plants in his garden.\n#### 35"),
]  # fmt: skip
NAMES = ["Tom", "Ann", "Sam", "Mia", "Joe", "Lea", "Raj", "Ivy"]
THINGS = ["apples", "pens", "cards", "books", "stamps", "shells", "coins", "marbles"]


def elapsed() -> float:
    return time.perf_counter() - START


# ---------------------------------------------------------------- prompts and tokenizer


def question(k: int) -> str:
    """The ``k``-th of the benchmark's distinct questions (names, things and numbers vary)."""
    name, thing = NAMES[k % len(NAMES)], THINGS[(k // len(NAMES)) % len(THINGS)]
    a, b, c = 3 + k, 2 + (7 * k) % 11, 2 + (5 * k) % 7
    return (f"{name} has {a} {thing} and buys {b} more bags of {c} {thing} each. Then {name} gives away "
            f"half of them. How many {thing} does {name} have left?")  # fmt: skip


def corpus() -> list[str]:
    return [f"Q: {q}\nA: {a}" for q, a in SHOTS] + [question(k) for k in range(64)]


def built_tokenizer(vocab_size: int):
    """A byte-level BPE trained on the prompt text, its vocabulary padded to ``vocab_size`` with filler
    words (never produced by encoding, decodable), so that every id a random model picks is text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=min(vocab_size, 2000),
        special_tokens=SPECIALS,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    core.train_from_iterator(corpus(), trainer)
    data = json.loads(core.to_str())
    vocab = data["model"]["vocab"]
    serial = 0
    while len(vocab) < vocab_size:
        word = f"\u0120zq{serial}"  # "Ġ" is byte-level BPE's space: decodes to " zq123"
        serial += 1
        if word not in vocab:
            vocab[word] = len(vocab)
    core = Tokenizer.from_str(json.dumps(data))
    return PreTrainedTokenizerFast(
        tokenizer_object=core, eos_token="<eos>", pad_token="<pad>", bos_token="<bos>", unk_token="<unk>"
    )


def cached_tokenizer(vocab_size: int):
    """A converted model's own tokenizer under .cache/selftaught/base whose vocabulary is exactly
    ``vocab_size`` (Gemma 3's for the Gemma shape), or None."""
    from transformers import AutoTokenizer

    for path in sorted((REPO / ".cache" / "selftaught" / "base").glob("*/tokenizer.json")):
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(path.parent))
        except Exception:  # a partial copy, or a tokenizer this transformers cannot read
            continue
        if len(tokenizer) == vocab_size and tokenizer.eos_token_id is not None:
            return tokenizer, str(path.parent.relative_to(REPO))
    return None


def make_prompts(tokenizer, questions: int, prefix_tokens: int) -> tuple[list[str], int]:
    """``questions`` prompts sharing a few-shot prefix of at least ``prefix_tokens`` tokens; the prefix's
    length in tokens."""
    blocks = [f"Q: {q}\nA: {a}" for q, a in SHOTS]
    chosen: list[str] = []
    while True:
        chosen.append(blocks[len(chosen) % len(blocks)])
        prefix = "\n\n".join(chosen)
        if len(tokenizer(prefix)["input_ids"]) >= prefix_tokens:
            break
    length = len(tokenizer(prefix)["input_ids"])
    return [f"{prefix}\n\nQ: {question(k)}\nA:" for k in range(questions)], length


# ---------------------------------------------------------------- environment


def versions() -> dict:
    """The project's library versions (`library_versions`), plus vLLM's."""
    from selftaught.common.versions import library_versions

    try:
        vllm = importlib.metadata.version("vllm")
    except importlib.metadata.PackageNotFoundError:
        vllm = None
    return {**library_versions(), "vllm": vllm}


def device_name(device: str) -> str:
    import torch

    if device == "cuda":
        return torch.cuda.get_device_name(0)
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").is_file() else []:
        if line.startswith("model name"):
            return f"CPU: {line.split(':', 1)[1].strip()} ({torch.get_num_threads()} threads)"
    return f"CPU: {platform.processor() or platform.machine()}"


def sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def matmul_peak_tflops(device: str, size: int, repeats: int = 10) -> float:
    """bf16 matmul throughput on ``device`` (best of ``repeats`` on CPU, mean after 3 warm-ups on CUDA)."""
    import torch

    a, b = (torch.randn(size, size, device=device, dtype=torch.bfloat16) for _ in range(2))
    for _ in range(3):
        a @ b
    sync(device)
    if device == "cuda":
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        begin.record()
        for _ in range(repeats):
            a @ b
        end.record()
        torch.cuda.synchronize()
        seconds = begin.elapsed_time(end) / 1000 / repeats
    else:
        seconds = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            a @ b
            seconds = min(seconds, time.perf_counter() - t)
    return 2 * size**3 / seconds / 1e12


# ---------------------------------------------------------------- model folders


def build_shape(shape: str, folder: Path, args, device: str) -> dict:
    """Random-weight model of ``shape`` (tiny under --smoke) with its tokenizer and prompts in ``folder``."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # save_pretrained's shard bar
    fields = dict(SHAPES[shape]) | (TINY[shape] if args.smoke else {})
    model_type = fields.pop("model_type")
    found = cached_tokenizer(fields["vocab_size"]) if args.tokenizer == "auto" and not args.smoke else None
    tokenizer, source = found if found else (built_tokenizer(fields["vocab_size"]), "built byte-level BPE")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    ids = {"pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id,
           "bos_token_id": tokenizer.bos_token_id}  # fmt: skip
    config = AutoConfig.for_model(model_type, **fields, **ids)
    torch.manual_seed(0)
    with torch.device(device):  # random init where it is fast
        model = AutoModelForCausalLM.from_config(config)
    model.to(torch.bfloat16).save_pretrained(folder / "model")
    tokenizer.save_pretrained(folder / "model")
    params = sum(p.numel() for p in model.parameters())  # tied output layer counted once
    del model
    prompts, prefix_length = make_prompts(tokenizer, args.questions, args.prefix_tokens)
    question_tokens = [len(tokenizer(p)["input_ids"]) - prefix_length for p in prompts]
    (folder / "bench.json").write_text(json.dumps({"prompts": prompts, "new_tokens": args.new_tokens}))
    return {"model_type": model_type, "parameters": params, "layers": config.num_hidden_layers,
            "hidden": config.hidden_size, "vocab": config.vocab_size, "tokenizer": source,
            "prefix_tokens": prefix_length,
            "question_tokens_mean": round(sum(question_tokens) / len(prompts), 1)}  # fmt: skip


def gsm8k_stop():
    """The GSM8K task's own stop (no ``task.data.stop``)."""
    from selftaught.config import DataConfig
    from selftaught.tasks.gsm8k import GSM8KTask

    return GSM8KTask(DataConfig()).stop()


# ---------------------------------------------------------------- (a) generation


WARM = ["Q: Warm up, one?\nA:", "Q: A second warm-up question, longer than the first one?\nA:"]


def generation_rows(shape: str, folder: Path, args, device: str, guard) -> list[dict]:
    """Timed rows for the in-process variants (generate, hf, sampler) on one bf16 load of the model,
    plain generate first (before a `Generator` hooks the output layer); vllm in a child process."""
    import torch

    from selftaught.config import ModelConfig
    from selftaught.generation import Generator
    from selftaught.generation.sampling import Sampling
    from selftaught.models import free_memory, load_model

    bench = json.loads((folder / "bench.json").read_text())
    prompts, budget = bench["prompts"], bench["new_tokens"]
    stop = gsm8k_stop()
    rows: dict[str, dict] = {}
    lm = None
    for variant in ("generate", "hf", "sampler", "vllm"):
        if not guard(f"{shape} {variant}"):
            rows[variant] = {"status": "skipped (budget)"}
            continue
        try:
            if variant == "vllm":
                if lm is not None:
                    del lm
                    lm = None
                    free_memory()
                rows[variant] = vllm_row(folder, args, device)
                continue
            if lm is None:
                t = time.perf_counter()
                lm = load_model(folder / "model", ModelConfig(device=device, chat_template="off"), torch.bfloat16)
                load_s = time.perf_counter() - t
            sampling = Sampling(stop=stop.for_chat(lm.chat))
            if variant == "generate":
                plain_generate(lm, WARM, 4, sampling, args.batch_size)
                sync(device)
                t = time.perf_counter()
                ids = plain_generate(lm, prompts, budget, sampling, args.batch_size)
                sync(device)
                seconds = time.perf_counter() - t
                tokens = sum(len(r) for r in ids)
                texts = [sampling.stop.cut(x) for x in lm.tokenizer.batch_decode(ids, skip_special_tokens=True)]
            else:
                Generator(lm, variant, args.batch_size).complete(WARM, [4] * len(WARM), sampling)
                generator = Generator(lm, variant, args.batch_size)  # fresh: the prefix is encoded in the timing
                sync(device)
                t = time.perf_counter()
                texts = [c[0] for c in generator.complete(prompts, [budget] * len(prompts), sampling)]
                sync(device)
                seconds = time.perf_counter() - t
                tokens = generator.tokens_generated
            dtype = str(next(lm.model.parameters()).dtype).removeprefix("torch.")
            rows[variant] = {"status": "ok", "seconds": seconds, "tokens": tokens, "load_s": load_s,
                             "texts": texts, "dtype": dtype}  # fmt: skip
        except Exception as err:  # a broken row must not cost the others
            rows[variant] = failed(err)
            free_memory()
    del lm
    free_memory()
    base = rows.get("generate", {})
    out = []
    for variant in GEN_VARIANTS:
        row = {"kind": "generation", "shape": shape, "variant": variant, **rows[variant]}
        if row["status"] == "ok":
            row["tokens_per_second"] = row["tokens"] / row["seconds"]
            if base.get("status") == "ok":
                row["x_generate"] = row["tokens_per_second"] / (base["tokens"] / base["seconds"])
                row["same_text_as_generate"] = sum(a == b for a, b in zip(row["texts"], base["texts"]))
            row["texts_sample"] = row["texts"][:2]
        row.pop("texts", None)
        out.append(row)
    return out


def plain_generate(lm, prompts: list[str], budget: int, sampling, batch_size: int) -> list[list[int]]:
    """The library baseline: `model.generate` on the full prompts, left-padded, no prefix reuse."""
    from selftaught.generation.sampler import encode, hf_generate_ids

    ids = encode(lm.tokenizer, [lm.render(p) for p in prompts], lm.add_special_tokens)
    out: list[list[int]] = []
    for k in range(0, len(ids), batch_size):
        out += hf_generate_ids(lm.model, lm.tokenizer, ids[k : k + batch_size], budget, sampling)
    return out


def vllm_row(folder: Path, args, device: str) -> dict:
    if importlib.util.find_spec("vllm") is None:
        return {"status": "not installed"}
    if device != "cuda":
        return {"status": "needs a CUDA device"}
    cmd = [sys.executable, __file__, "--vllm-worker", str(folder)]
    timeout = max(30.0, args.budget_s - elapsed())
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"status": f"failed: timed out after {timeout:.0f} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"status": f"failed: {tail[0][:200]}", "stderr_tail": done.stderr[-3000:]}
    return {"status": "ok", **json.loads(lines[-1])}


def vllm_worker(folder: Path) -> None:
    """In its own process: selftaught's vLLM backend on the folder's model and prompts; prints one JSON line."""
    from selftaught.config import ModelConfig
    from selftaught.generation.sampling import Sampling
    from selftaught.generation.vllm import VLLMGenerator

    bench = json.loads((folder / "bench.json").read_text())
    prompts, budget = bench["prompts"], bench["new_tokens"]
    t = time.perf_counter()
    generator = VLLMGenerator(folder / "model", ModelConfig(chat_template="off"), render=lambda p: p, seed=0)
    load_s = time.perf_counter() - t
    sampling = Sampling(stop=gsm8k_stop())
    generator.complete(WARM, [4] * len(WARM), sampling)  # other prompts: the prefix is not cached by the warm-up
    generator.tokens_generated = 0
    t = time.perf_counter()
    texts = [c[0] for c in generator.complete(prompts, [budget] * len(prompts), sampling)]
    seconds = time.perf_counter() - t
    print(json.dumps({"seconds": seconds, "tokens": generator.tokens_generated, "load_s": load_s, "texts": texts,
                      "dtype": "bfloat16"}))  # fmt: skip


# ---------------------------------------------------------------- (b) training


def training_row(shape: str, mode: str, folder: Path, info: dict, args, device: str, peak: float) -> dict:
    """`train_sft` on the folder's model: tokens/s over the steps after the warm-up, MFU."""
    from selftaught.config import LoraConfig, ModelConfig, TrainConfig
    from selftaught.models import free_memory, load_model
    from selftaught.training.sft import SftJob, add_lora, encode_pairs, train_sft

    lm = load_model(folder / "model", ModelConfig(device=device, chat_template="off"))
    dtype = str(next(lm.model.parameters()).dtype).removeprefix("torch.")
    params = sum(p.numel() for p in lm.model.parameters())
    length, batch, steps = args.train_length, args.train_batch, args.train_steps
    answers = "\n".join(a for _, a in SHOTS)
    completion = " " + answers
    while len(lm.tokenizer(completion)["input_ids"]) < length:
        completion += "\n" + answers
    # one pass over the examples, each exactly `length` tokens (the completion is cut by max_length)
    pairs = [(f"Q: {question(k)}\nA:", completion) for k in range(steps * batch)]
    features = encode_pairs(lm.tokenizer, lm.scheme, pairs, max_length=length)
    assert all(len(f["input_ids"]) == length for f in features), "examples of unequal length"
    lora = LoraConfig()
    model = add_lora(lm.model, lora.r, lora.alpha, lora.dropout, lora.target_modules) if mode == "lora" else lm.model
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    settings = TrainConfig(
        batch_size=batch, learning_rate=1e-4, save_every_steps=0, precision="bf16", max_length=length
    )
    stamps: list[float] = []

    def on_step(step: int, loss: float | None) -> None:
        sync(device)
        stamps.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        log = train_sft(
            model, features, lm.tokenizer.pad_token_id, SftJob(tmp, steps, settings, seed=0), on_step=on_step
        )
        seconds = time.perf_counter() - t
    del model, lm
    free_memory()
    warm = min(max(1, args.train_warmup), steps - 1)  # the first step (allocations, kernel choice) is never timed
    timed_s = stamps[-1] - stamps[warm - 1]
    tokens = (steps - warm) * batch * length
    rate = tokens / timed_s
    attention = 12 * info["layers"] * info["hidden"] * length / 2  # PaLM appendix B, mean attended length
    row = {"status": "ok", "seconds": seconds, "timed_seconds": timed_s, "tokens": tokens, "steps": steps,
           "warmup_steps": warm, "batch": batch, "length": length, "weights_dtype": dtype, "parameters": params,
           "trainable": trainable, "tokens_per_second": rate, "first_loss": log[0]["loss"],
           "last_loss": log[-1]["loss"], "flops_per_token_6n": 6 * params,
           "flops_per_token_4n": 4 * params, "attention_flops_per_token": attention,
           "mfu_measured": 6 * params * rate / (peak * 1e12)}  # fmt: skip
    if device == "cuda":
        row["mfu_h100_datasheet"] = 6 * params * rate / (H100_DENSE_BF16_TFLOPS * 1e12)
    if mode == "lora":
        row["mfu_measured_4n"] = 4 * params * rate / (peak * 1e12)
    row["mfu_measured_with_attention"] = ((6 if mode == "full" else 4) * params + attention) * rate / (peak * 1e12)
    return row


# ---------------------------------------------------------------- table and JSON


def failed(err: BaseException) -> dict:
    first = (str(err).strip().splitlines() or [""])[0][:160]
    return {"status": f"failed: {type(err).__name__}: {first}", "traceback": traceback.format_exc()[-3000:]}


def write(out: Path, payload: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    tmp.replace(out)


def fmt(value, spec: str) -> str:
    """``value`` formatted, or "-" as wide, where there is none."""
    width = int(spec.split(".")[0].rstrip("dfs") or 0)
    return format(value, spec) if isinstance(value, int | float) else "-".rjust(width)


def print_table(payload: dict) -> None:
    env, a = payload["environment"], payload["args"]
    print(f"\nGPU table: {env['device_name'][:60]}")
    print(f"torch {env['torch']}, transformers {env['transformers']}, vllm {env['vllm'] or 'not installed'}")
    peak = payload.get("peak_bf16_tflops")
    print(f"bf16 matmul peak measured {fmt(peak, '.1f')} TFLOP/s; H100 datasheet {H100_DENSE_BF16_TFLOPS:.0f}")
    for shape, info in payload["shapes"].items():
        print(f"{shape}: {info['parameters'] / 1e6:.1f}M params, prefix {info['prefix_tokens']} tokens, "
              f"tokenizer {info['tokenizer'][:30]}")  # fmt: skip
    gen = [r for r in payload["rows"] if r["kind"] == "generation"]
    if gen:
        print(f"\n(a) generation, bf16, greedy, stops on: {a['questions']} questions x {a['new_tokens']} new "
              f"tokens, batch {a['batch_size']}")  # fmt: skip
        print(f"{'shape':13}{'variant':9}{'sec':>8}{'tokens':>8}{'tok/s':>10}{'x gen':>7}{'same':>7}  status")
        for r in gen:
            same = f"{r['same_text_as_generate']}/{a['questions']}" if "same_text_as_generate" in r else "-"
            print(f"{r['shape']:13}{r['variant']:9}{fmt(r.get('seconds'), '8.2f')}{fmt(r.get('tokens'), '8d')}"
                  f"{fmt(r.get('tokens_per_second'), '10.1f')}{fmt(r.get('x_generate'), '7.2f')}{same:>7}"
                  f"  {r['status'][:20]}")  # fmt: skip
    train = [r for r in payload["rows"] if r["kind"] == "training"]
    warm = min(max(1, a["train_warmup"]), a["train_steps"] - 1)
    if train:
        print(f"\n(b) training, train_sft, bf16 autocast: {a['train_steps']} steps ({warm} untimed) of "
              f"{a['train_batch']} x {a['train_length']} tokens")  # fmt: skip
        print("MFU = 6 N tok/s / peak (measured; H100 datasheet 989)")
        print(f"{'shape':13}{'mode':6}{'sec':>8}{'tokens':>8}{'tok/s':>10}{'MFU %':>7}{'%989':>6}{'loss':>7}  status")
        for r in train:
            mfu, sheet = r.get("mfu_measured"), r.get("mfu_h100_datasheet")
            print(f"{r['shape']:13}{r['mode']:6}{fmt(r.get('timed_seconds'), '8.2f')}{fmt(r.get('tokens'), '8d')}"
                  f"{fmt(r.get('tokens_per_second'), '10.1f')}{fmt(mfu and 100 * mfu, '7.1f')}"
                  f"{fmt(sheet and 100 * sheet, '6.1f')}{fmt(r.get('last_loss'), '7.2f')}"
                  f"  {r['status'][:12]}")  # fmt: skip
    print(f"\n{payload['elapsed_s']:.0f} s of a {a['budget_s']:.0f} s budget; "
          f"{'complete' if payload['complete'] else 'INCOMPLETE: rows skipped'}")  # fmt: skip


# ---------------------------------------------------------------- main


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    p.add_argument("--smoke", action="store_true", help="tiny shapes and sizes (CPU, well under a minute)")
    p.add_argument("--budget-s", type=float, default=480.0, help="no row starts after this many seconds")
    p.add_argument("--out", type=Path, help=f"default {DEFAULT_OUT.relative_to(REPO)} (gpu_smoke.json with --smoke)")
    p.add_argument("--shapes", default=",".join(SHAPES), help=f"comma-separated, of {', '.join(SHAPES)}")
    p.add_argument("--tokenizer", choices=("auto", "built"), default="auto",
                   help="auto: a converted model's own tokenizer from .cache when its vocabulary matches")  # fmt: skip
    for name, full, smoke in (("questions", 64, 4), ("new-tokens", 128, 8), ("prefix-tokens", 1000, 96),
                              ("batch-size", 64, 4), ("train-steps", 20, 4), ("train-warmup", 3, 1),
                              ("train-batch", 8, 2), ("train-length", 1024, 64)):  # fmt: skip
        p.add_argument(f"--{name}", type=int, default=None, help=f"default {full} ({smoke} with --smoke)")
    p.add_argument("--vllm-worker", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for name, full, smoke in (("questions", 64, 4), ("new_tokens", 128, 8), ("prefix_tokens", 1000, 96),
                              ("batch_size", 64, 4), ("train_steps", 20, 4), ("train_warmup", 3, 1),
                              ("train_batch", 8, 2), ("train_length", 1024, 64)):  # fmt: skip
        if getattr(args, name) is None:
            setattr(args, name, smoke if args.smoke else full)
    if args.out is None:
        args.out = DEFAULT_OUT.with_name("gpu_smoke.json") if args.smoke else DEFAULT_OUT
    if args.train_steps < 2:
        p.error("--train-steps must be at least 2 (the first step is never timed)")
    return args


def main(argv=None) -> dict | None:
    args = parse(argv)
    if args.vllm_worker:
        vllm_worker(args.vllm_worker)
        return None
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is visible")
    device = "cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()) else "cpu"
    shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
    unknown = [s for s in shapes if s not in SHAPES]
    if unknown:
        raise SystemExit(f"unknown shape(s) {unknown}; choose from {list(SHAPES)}")
    env = {"device": device, "device_name": device_name(device), **versions()}
    payload = {"script": "benchmarks/gpu.py", "args": {k: str(v) if isinstance(v, Path) else v
               for k, v in vars(args).items() if k != "vllm_worker"}, "environment": env,
               "h100_datasheet_bf16_tflops": H100_DENSE_BF16_TFLOPS, "shapes": {}, "rows": [], "skipped": [],
               "complete": False, "elapsed_s": 0.0}  # fmt: skip
    common = {"device_name": env["device_name"], "torch": env["torch"], "transformers": env["transformers"],
              "vllm": env["vllm"]}  # fmt: skip

    def save() -> None:
        payload["elapsed_s"] = elapsed()
        write(args.out, payload)

    def guard(what: str) -> bool:
        if elapsed() < args.budget_s:
            return True
        payload["skipped"].append(what)
        print(f"[{elapsed():6.1f}s] skipped (budget {args.budget_s:.0f} s): {what}", flush=True)
        return False

    def add(row: dict) -> None:
        row.update(common)
        payload["rows"].append(row)
        save()
        tps = f"{row['tokens_per_second']:.1f} tok/s" if "tokens_per_second" in row else ""
        name = row.get("variant") or row.get("mode")
        print(f"[{elapsed():6.1f}s] {row['kind']} {row['shape']} {name}: {row['status'][:60]} {tps}", flush=True)

    peak = matmul_peak_tflops(device, 8192 if device == "cuda" else 256) if guard("peak") else None
    payload["peak_bf16_tflops"] = peak
    save()
    with tempfile.TemporaryDirectory() as tmp:
        for shape in shapes:
            folder = Path(tmp) / shape
            if not guard(f"{shape} build"):
                for v in GEN_VARIANTS:
                    add({"kind": "generation", "shape": shape, "variant": v, "status": "skipped (budget)"})
                for m in TRAIN_MODES:
                    add({"kind": "training", "shape": shape, "mode": m, "status": "skipped (budget)"})
                continue
            try:
                info = build_shape(shape, folder, args, device)
            except Exception as err:
                bad = failed(err)
                for v in GEN_VARIANTS:
                    add({"kind": "generation", "shape": shape, "variant": v, **bad})
                for m in TRAIN_MODES:
                    add({"kind": "training", "shape": shape, "mode": m, **bad})
                continue
            payload["shapes"][shape] = info
            print(f"[{elapsed():6.1f}s] built {shape}: {info['parameters'] / 1e6:.1f}M params", flush=True)
            for row in generation_rows(shape, folder, args, device, guard):
                add(row)
            for mode in TRAIN_MODES:
                row = {"kind": "training", "shape": shape, "mode": mode}
                if not guard(f"{shape} {mode}"):
                    add(row | {"status": "skipped (budget)"})
                    continue
                try:
                    row |= training_row(shape, mode, folder, info, args, device, peak or float("nan"))
                except Exception as err:
                    row |= failed(err)
                    from selftaught.models import free_memory

                    free_memory()
                add(row)
    payload["complete"] = not payload["skipped"]
    save()
    print_table(payload)
    print(f"wrote {args.out}")
    return payload


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
