"""Hugging Face models through the same loop: tiny random Llama / Qwen2 saved locally and loaded back
with ``from_pretrained(path)``, on tiny GSM8K and CommonsenseQA fixture files."""

from __future__ import annotations

import json

import pytest
import torch

from selftaught import rundir
from selftaught.config import config_from_dict
from selftaught.loop import run_star
from selftaught.models import load_model
from selftaught.tasks import make_task
from tests.tiny_hf import save_tiny

pytestmark = pytest.mark.slow  # whole STaR runs: seconds to minutes each

GSM_ROWS = [
    ("Tom has 3 apples and buys 4 more. How many apples does he have?", "Tom has 3+4 = <<3+4=7>>7 apples.\n#### 7"),
    ("A box holds 6 pens. How many pens are in 2 boxes?", "2 boxes hold 2*6 = <<2*6=12>>12 pens.\n#### 12"),
    ("Sam had 10 cards and gave away 4. How many are left?", "Sam has 10-4 = <<10-4=6>>6 cards.\n#### 6"),
    ("Ann reads 5 pages a day for 3 days. How many pages?", "Ann reads 5*3 = <<5*3=15>>15 pages.\n#### 15"),
    ("A cat has 4 legs. How many legs do 2 cats have?", "Two cats have 2*4 = <<2*4=8>>8 legs.\n#### 8"),
    ("Joe buys 2 hats at $9 each. How much does he pay?", "He pays 2*9 = $<<2*9=18>>18.\n#### 18"),
]
GSM_FEW_SHOT = "Q: Mia has 2 dogs and gets 1 more. How many dogs?\nA: Mia has 2+1 = <<2+1=3>>3 dogs.\n#### 3\n"
CSQA_ROWS = [
    ("Where do you put a letter to send it?", ["mailbox", "oven", "river", "shoe", "cloud"], "A"),
    ("What do you use to cut paper?", ["spoon", "scissors", "pillow", "lamp", "rug"], "B"),
    ("Where do fish live?", ["desert", "attic", "water", "closet", "oven"], "C"),
    ("What keeps you dry in the rain?", ["sponge", "towel", "bucket", "umbrella", "fan"], "D"),
]
CSQA_FEW_SHOT = (
    "Q: What do people use to absorb extra ink from a fountain pen?\nAnswer Choices:\n(a) shirt pocket\n"
    "(b) calligrapher's hand\n(c) inkwell\n(d) desk drawer\n(e) blotter\nA: The answer must absorb ink. "
    "Blotters absorb liquids. Therefore, the answer is blotter (e).\n"
)


def write_gsm(root):
    lines = [json.dumps({"question": q, "answer": a}) for q, a in GSM_ROWS]
    (root / "train.jsonl").write_text("\n".join(lines) + "\n")
    (root / "test.jsonl").write_text("\n".join(lines[:3]) + "\n")
    (root / "prompts.txt").write_text(GSM_FEW_SHOT)


def write_csqa(root):
    rows = []
    for k, (stem, choices, key) in enumerate(CSQA_ROWS):
        labelled = [{"label": "ABCDE"[i], "text": t} for i, t in enumerate(choices)]
        rows.append(json.dumps({"answerKey": key, "id": f"q{k}", "question": {"stem": stem, "choices": labelled}}))
    (root / "train.jsonl").write_text("\n".join(rows) + "\n")
    (root / "test.jsonl").write_text("\n".join(rows[:2]) + "\n")
    (root / "prompts.txt").write_text(CSQA_FEW_SHOT)


def make_config(root, task: str, **sections):
    data = {
        "task": {
            "name": task,
            "data": {
                "train": str(root / "train.jsonl"),
                "test": str(root / "test.jsonl"),
                "few_shot": str(root / "prompts.txt"),
                "max_new_tokens": 48,
            },
        },
        "model": {"name_or_path": str(root / "model")},
        "generation": {"batch_size": 8},
        "train": {"first_steps": 3, "batch_size": 4, "learning_rate": 1e-3},
        "loop": {"iterations": 1, "filter": "answer", "patience": 0},
    }
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    return config_from_dict(data)


def build(root, task: str, arch="llama", chat=False, writer=write_gsm):
    """Fixture files + a tiny model that has memorized half of the training rationales."""
    root.mkdir(parents=True, exist_ok=True)
    writer(root)
    config = make_config(root, task, model={"chat_template": "on" if chat else "off"})
    t = make_task(config)
    examples = t.load("train")
    solutions = {ex.id: dict(ex.meta).get("solution") or t.direct_completion(ex).strip() for ex in examples}
    pairs = [(t.prompt(ex), " " + solutions[ex.id]) for ex in examples[: len(examples) // 2 + 1]]
    corpus = [root.joinpath(n).read_text() for n in ("train.jsonl", "prompts.txt")] + [p + c for p, c in pairs]
    save_tiny(root / "model", corpus, pairs, arch=arch, chat=chat, steps=120)
    return config


@pytest.fixture(scope="module")
def gsm_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("gsm")
    config = build(root, "gsm8k")
    return config, root, run_star(config, root / "run")


def test_model_loads_back_from_path(gsm_run):
    config, root, _ = gsm_run
    lm = load_model(root / "model", config.model)
    assert type(lm.model).__name__ == "LlamaForCausalLM" and not lm.chat
    assert next(lm.model.parameters()).dtype == torch.float32  # CPU: fp32


def test_gsm8k_iteration_end_to_end(gsm_run):
    config, root, summary = gsm_run
    folder = root / "run" / "iter_001"
    generated = rundir.read_jsonl(folder / "generated.jsonl")
    assert {r["hinted"] for r in generated} == {False, True}  # some failed and were retried with the hint
    train = rundir.read_jsonl(folder / "train.jsonl")
    assert train, "the memorized rationales should be kept"
    assert all(r["prompt"].endswith("\nA:") and "(" not in r["prompt"].splitlines()[-2] for r in train)
    assert all("####" in r["completion"] for r in train)
    assert (folder / "checkpoint" / "model.safetensors").is_file()
    row = summary.iterations[0]
    assert row.num_kept >= 1 and 0 <= row.accuracy <= 1
    assert set(row.accuracy_by_bucket) <= {"1", "2", "3"}


def test_full_finetuning_changes_base_weights(gsm_run):
    config, root, _ = gsm_run
    before = load_model(root / "model", config.model).model.state_dict()
    after = load_model(root / "run" / "iter_001" / "checkpoint", config.model).model.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert len(changed) >= len(before) // 2


def test_commonsenseqa_iteration_end_to_end(tmp_path):
    config = build(tmp_path, "commonsenseqa", arch="qwen2", writer=write_csqa)
    summary = run_star(config, tmp_path / "run")
    train = rundir.read_jsonl(tmp_path / "run" / "iter_001" / "train.jsonl")
    assert train and all("Answer Choices:" in r["prompt"] and "(CORRECT)" not in r["prompt"] for r in train)
    assert summary.iterations[0].num_kept >= 1


def test_lora_trains_only_adapters_and_saves_them(tmp_path):
    config = build(tmp_path, "gsm8k")
    lora = make_config(tmp_path, "gsm8k", model={"lora": {"enabled": True, "r": 4, "alpha": 8}})
    run_star(lora, tmp_path / "run")
    checkpoint = tmp_path / "run" / "iter_001" / "checkpoint"
    assert (checkpoint / "adapter_config.json").is_file()
    assert (checkpoint / "adapter_model.safetensors").is_file()
    assert not (checkpoint / "model.safetensors").exists()
    from safetensors.torch import load_file

    adapter = load_file(checkpoint / "adapter_model.safetensors")
    assert adapter and all("lora_" in k for k in adapter)
    assert any(v.abs().sum() > 0 for k, v in adapter.items() if "lora_B" in k)  # B starts at 0: it trained
    # the merged model differs from the base only through the adapter
    base = load_model(tmp_path / "model", config.model).model.state_dict()
    merged = load_model(checkpoint, config.model).model.state_dict()
    assert any(not torch.equal(base[k], merged[k]) for k in base)


def test_chat_template_model_goes_through_the_loop(tmp_path):
    config = build(tmp_path, "gsm8k", arch="qwen2", chat=True)
    lm = load_model(tmp_path / "model", config.model)
    assert lm.chat and lm.render("Q: hi\nA:").startswith("<|im_start|>user\n")
    summary = run_star(config, tmp_path / "run")
    assert summary.iterations[0].num_kept >= 1
    assert (tmp_path / "run" / "iter_001" / "checkpoint" / "model.safetensors").is_file()


def test_vllm_backend_missing_gives_a_clear_error(tmp_path):
    pytest.importorskip("peft")
    try:
        import vllm  # noqa: F401

        pytest.skip("vllm is installed")
    except ImportError:
        pass
    from selftaught.config import ConfigError
    from selftaught.generation.vllm import import_vllm

    with pytest.raises(ConfigError, match=r"pip install 'selftaught\[vllm\]'"):
        import_vllm()
