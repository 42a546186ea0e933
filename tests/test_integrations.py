"""Fitting users' tools: trackers (TensorBoard read back), model cards, LoRA base paths, merged weights.

One LoRA run of a tiny local Llama on the GSM8K fixture, started from a RELATIVE model path in another
directory, with ``report_to=tensorboard`` and ``model.lora.save_merged``.
"""

from __future__ import annotations

import json
import os
import sys
import types

import pytest

from selftaught.config import ConfigError, load_config
from selftaught.loop import run_star
from selftaught.tracking import Tracker, TrackerError, star_scalars
from tests.test_real_models import build, make_config


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    pytest.importorskip("tensorboard")
    root = tmp_path_factory.mktemp("lora")
    build(root, "gsm8k")
    config = make_config(
        root,
        "gsm8k",
        model={"name_or_path": "model", "lora": {"enabled": True, "r": 4, "alpha": 8, "save_merged": True}},
    )
    config.report_to = "tensorboard"
    config.train.first_steps = 4  # logging every step: 4 loss points
    here = os.getcwd()
    os.chdir(root)  # the model path is relative to the directory the run starts in
    try:
        summary = run_star(config, root / "run")
    finally:
        os.chdir(here)
    return config, root, summary


def _scalars(folder) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_tensorboard_gets_star_metrics_per_iteration(lora_run):
    _, root, summary = lora_run
    logged = _scalars(root / "run" / "logs")
    row = summary["iterations"][0]
    assert logged["star/accuracy"] == [
        (0, pytest.approx(summary["base"]["accuracy"])),
        (1, pytest.approx(row["accuracy"])),
    ]
    for bucket, value in row["accuracy_by_bucket"].items():
        assert logged[f"star/accuracy_by_bucket/{bucket}"][-1] == (1, pytest.approx(value))
    for key in ("num_kept", "num_rationalized", "num_rejected", "train_steps"):
        assert logged[f"star/{key}"] == [(1, float(row[key]))]
    assert row["num_rejected"] >= 1  # the tiny model memorised only half of the rationales
    for phase in ("generate", "rationalize", "train", "evaluate"):
        assert logged[f"star/seconds/{phase}"][0][1] > 0


def test_trainer_logs_survive_the_scratch_folder(lora_run):
    _, root, _ = lora_run
    folder = root / "run" / "iter_001"
    assert not (folder / ".trainer").exists()
    logged = _scalars(folder / "logs")
    losses = logged["train/loss"]
    assert [step for step, _ in losses] == [1, 2, 3, 4] and all(v > 0 for _, v in losses)
    assert "train/learning_rate" in logged


def test_lora_adapter_records_an_absolute_base_that_loads_from_elsewhere(lora_run, tmp_path, monkeypatch):
    _, root, _ = lora_run
    checkpoint = root / "run" / "iter_001" / "checkpoint"
    base = json.loads((checkpoint / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert base == str((root / "model").resolve())
    assert json.loads((checkpoint / "selftaught.json").read_text())["base_model"] == base
    monkeypatch.chdir(tmp_path)  # somewhere the relative "model" does not exist
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoModelForCausalLM

    adapter = AutoPeftModelForCausalLM.from_pretrained(str(checkpoint)).merge_and_unload()
    merged = AutoModelForCausalLM.from_pretrained(str(checkpoint / "merged"))  # plain transformers, no PEFT
    a, m = adapter.state_dict(), merged.state_dict()
    assert set(a) == set(m) and all((a[k] - m[k]).abs().max() < 1e-5 for k in a)


def test_model_card_states_what_a_user_needs(lora_run):
    config, root, summary = lora_run
    from huggingface_hub import ModelCard

    from selftaught.tasks import make_task

    checkpoint = root / "run" / "iter_001" / "checkpoint"
    card = ModelCard.load(checkpoint / "README.md")
    row = summary["iterations"][0]
    assert card.data.library_name == "peft" and "selftaught" in card.data.tags
    assert card.data.eval_results[0].metric_value == round(row["accuracy"], 4)
    text = card.text
    assert str((root / "model").resolve()) in text  # base model
    assert "iteration 1" in text and f"{row['accuracy']:.1%}" in text
    assert f"kept {row['num_kept']}" in text and f"rejected {row['num_rejected']}" in text
    first_test_prompt = make_task(config).prompt(make_task(config).load("test")[0])
    assert first_test_prompt in text  # the exact prompt format, few-shot prefix included
    assert "#### N" in text  # how the answer is read
    assert "AutoPeftModelForCausalLM" in text and "transformers" in text and "torch" in text
    merged_card = ModelCard.load(checkpoint / "merged" / "README.md")
    assert merged_card.data.library_name == "transformers" and "AutoModelForCausalLM" in merged_card.text


def test_summary_records_library_versions(lora_run):
    _, _, summary = lora_run
    import torch
    import transformers

    versions = summary["versions"]
    assert versions["torch"] == torch.__version__ and versions["transformers"] == transformers.__version__
    assert {"selftaught", "peft", "datasets", "python"} <= set(versions)


def test_report_to_is_validated():
    assert load_config(None, ["report_to=tensorboard,wandb"]).report_to == "tensorboard,wandb"
    with pytest.raises(ConfigError, match="report_to must be one of"):
        load_config(None, ["report_to=tensorbord"])


def test_missing_tracker_package_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import fails as if not installed
    with pytest.raises(TrackerError, match=r"pip install 'selftaught\[mlflow\]'"):
        Tracker("mlflow", tmp_path)


@pytest.mark.parametrize("name", ["wandb", "mlflow", "trackio"])
def test_other_trackers_get_the_same_scalars(name, tmp_path, monkeypatch):
    """wandb / mlflow / trackio are not installed here: a recording stand-in checks the calls."""
    calls = []
    fake = types.ModuleType(name)
    record = lambda what: lambda *a, **k: calls.append((what, a, k))  # noqa: E731
    run = types.SimpleNamespace(log=record("log"), define_metric=record("define"), finish=record("finish"))
    fake.init = lambda *a, **k: calls.append(("init", a, k)) or run
    for attr in ("log", "finish", "start_run", "end_run", "log_metrics", "log_params"):
        setattr(fake, attr, record(attr))
    monkeypatch.setitem(sys.modules, name, fake)
    metrics = {"iteration": 2, "accuracy": 0.25, "accuracy_by_bucket": {"1": 0.5}, "num_kept": 3, "seconds": {}}
    tracker = Tracker(name, tmp_path / "myrun", {"seed": 0})
    tracker.log_iteration(metrics)
    tracker.close()
    logged = [c for c in calls if c[0] in ("log", "log_metrics")]
    assert len(logged) == 1
    payload = logged[0][1][0]
    assert {k: payload[k] for k in star_scalars(metrics)} == star_scalars(metrics)
    assert calls[-1][0] in ("finish", "end_run")
