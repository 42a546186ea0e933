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

from selftaught import rundir
from selftaught.common import atomic
from selftaught.config import ConfigError, load_config
from selftaught.loop import run_star
from selftaught.reporting.tracking import Tracker, TrackerError, star_scalars
from selftaught.rundir import IterationMetrics
from tests.models.test_real_models import build, make_config

pytestmark = pytest.mark.slow  # whole STaR runs: seconds to minutes each


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
    row = summary.iterations[0]
    assert logged["star/accuracy"] == [
        (0, pytest.approx(summary.base.accuracy)),
        (1, pytest.approx(row.accuracy)),
    ]
    for bucket, value in row.accuracy_by_bucket.items():
        assert logged[f"star/accuracy_by_bucket/{bucket}"][-1] == (1, pytest.approx(value))
    for key in ("num_kept", "num_rationalized", "num_rejected", "train_steps"):
        assert logged[f"star/{key}"] == [(1, float(getattr(row, key)))]
    assert row.num_rejected >= 1  # the tiny model memorised only half of the rationales
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
    row = summary.iterations[0]
    assert card.data.library_name == "peft" and "selftaught" in card.data.tags
    assert card.data.eval_results[0].metric_value == round(row.accuracy, 4)
    text = card.text
    assert str((root / "model").resolve()) in text  # base model
    assert "iteration 1" in text and f"{row.accuracy:.1%}" in text
    assert f"kept {row.num_kept}" in text and f"rejected {row.num_rejected}" in text
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

    versions = summary.versions
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
    metrics = IterationMetrics(2, 0.25, {"1": 0.5}, num_kept=3, seconds={})
    tracker = Tracker(name, tmp_path / "myrun", {"seed": 0})
    tracker.log_iteration(metrics)
    tracker.close()
    logged = [c for c in calls if c[0] in ("log", "log_metrics")]
    assert len(logged) == 1
    payload = logged[0][1][0]
    assert {k: payload[k] for k in star_scalars(metrics)} == star_scalars(metrics)
    assert calls[-1][0] in ("finish", "end_run")  # the run is closed (trackio: after every iteration)


# ------------------------------------------------------------------ report.html, compare, export, push
def _cli(*args):
    from typer.testing import CliRunner

    from selftaught.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def test_html_report_is_self_contained_and_shows_samples(lora_run, tmp_path):
    import base64
    import re
    import shutil

    _, root, summary = lora_run
    run = tmp_path / "run"
    shutil.copytree(root / "run", run)
    generated = rundir.read_jsonl(run / "iter_001" / "generated.jsonl")
    generated[0]["text"] = "<script>alert(1)</script>" + generated[0]["text"]  # model output is untrusted
    atomic.atomic_write_jsonl(run / "iter_001" / "generated.jsonl", generated)
    result = _cli("report", run)
    assert result.exit_code == 0, result.output
    page = (run / "report.html").read_text()
    assert "<script>" not in page and "&lt;script&gt;alert(1)" in page
    assert not re.search(r"""(src|href)=["'](?!data:)""", page)  # nothing outside the page
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 2 and all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)
    row = summary.iterations[0]
    assert f"<h4>kept: {row.num_kept} samples</h4>" in page
    assert f"<h4>rejected: {row.num_rejected} samples</h4>" in page
    assert "wrong answer" in page or "no answer found" in page  # a rejection reason
    assert "Tom has 3 apples" in page or "box holds 6 pens" in page  # questions rebuilt from the data
    assert f"<td>{row.accuracy:.1%}</td>" in page


def test_html_report_names_the_failed_step():
    from selftaught.reporting.html import classify, rejection_reason
    from selftaught.samples import Sample

    rows = [
        Sample("a", False, 0, "...", "7", True, True, None),
        Sample("b", True, 0, "...", "3", True, True, None),
        Sample("c", False, 0, "...", "7", True, False, "<<2*3=7>> is 6"),
    ]
    kinds = classify(rows, "answer+rationale")
    assert [[r.id for r in kinds[k]] for k in ("kept", "rationalized", "rejected")] == [["a"], ["b"], ["c"]]
    assert rejection_reason(kinds["rejected"][0], "7") == "failed step: <<2*3=7>> is 6"
    assert classify(rows, "answer")["kept"] == [rows[0], rows[2]]  # answer-only filter keeps it


def test_compare_two_runs_one_table_one_plot(lora_run, tmp_path):
    import shutil

    _, root, summary = lora_run
    other = tmp_path / "other"
    shutil.copytree(root / "run", other)
    data = rundir.read_json(other / "summary.json")
    data["iterations"][0]["accuracy"] = 0.875
    atomic.atomic_write_json(other / "summary.json", data)
    result = _cli("compare", root / "run", other, "--plot", tmp_path / "c.png")
    assert result.exit_code == 0, result.output
    assert "87.5%" in result.output and f"{summary.iterations[0].accuracy:.1%}" in result.output
    assert "run " in result.output and "other" in result.output
    assert (tmp_path / "c.png").read_bytes().startswith(b"\x89PNG")
    missing = _cli("compare", root / "run", tmp_path / "nope")
    assert missing.exit_code == 2 and "no summary.json" in missing.output


def _lm_eval_yaml(path):
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!function", lambda loader, node: ("function", loader.construct_scalar(node)))
    return yaml.load(path.read_text(), Loader=Loader)


def test_export_dataset_card_and_lm_eval_task(lora_run, tmp_path):
    import importlib.util

    from datasets import load_from_disk
    from huggingface_hub import DatasetCard

    from selftaught.tasks import make_task

    config, root, _ = lora_run
    out = tmp_path / "export"
    result = _cli("export", root / "run", "--out", out)
    assert result.exit_code == 0, result.output
    kept = rundir.read_jsonl(root / "run" / "iter_001" / "train.jsonl")
    assert load_from_disk(str(out / "dataset")).to_list() == kept
    assert rundir.read_jsonl(out / "data" / "train.jsonl") == kept
    card = DatasetCard.load(out / "README.md")
    assert card.data.configs[0]["data_files"][0]["path"] == "data/train.jsonl"
    assert f"rows:** {len(kept)}" in card.text and "SFTTrainer" in card.text
    spec = _lm_eval_yaml(out / "lm_eval" / "selftaught_gsm8k.yaml")
    assert spec["output_type"] == "generate_until" and spec["doc_to_text"] == "{{prompt}}"
    assert spec["process_results"] == ("function", "utils.process_results")
    assert spec["generation_kwargs"]["do_sample"] is False
    docs = rundir.read_jsonl(spec["dataset_kwargs"]["data_files"]["test"])
    task = make_task(config)
    assert [d["prompt"] for d in docs] == [task.prompt(ex) for ex in task.load("test")]  # the run's exact prompts
    module_spec = importlib.util.spec_from_file_location("st_utils", out / "lm_eval" / "utils.py")
    utils = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(utils)
    evaluated = {r["id"]: r for r in rundir.read_jsonl(root / "run" / "iter_001" / "eval.jsonl")}
    scores = [utils.process_results(d, [evaluated[d["id"]]["text"]])["acc"] for d in docs]
    assert scores == [float(evaluated[d["id"]]["correct"]) for d in docs]  # graded exactly as the run graded
    bad = _cli("export", root / "run", "--out", out, "--iteration", "7")
    assert bad.exit_code == 2 and "finished iterations [1]" in bad.output


class FakeHub:
    """Stands in for huggingface_hub.HfApi (no hub here): records calls and what the folder held."""

    calls: list = []

    def __init__(self, *args, **kwargs):
        pass

    def create_repo(self, repo_id, **kwargs):
        FakeHub.calls.append(("create_repo", repo_id, kwargs))

    def upload_folder(self, folder_path, repo_id, **kwargs):
        from pathlib import Path

        files = sorted(str(p.relative_to(folder_path)) for p in Path(folder_path).rglob("*") if p.is_file())
        FakeHub.calls.append(("upload_folder", repo_id, {**kwargs, "files": files}))
        return types.SimpleNamespace(commit_url=f"https://hub.example/{repo_id}/commit/1")


def test_push_checkpoint_and_export_to_a_mocked_hub(lora_run, tmp_path, monkeypatch):
    import huggingface_hub

    _, root, _ = lora_run
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHub)
    FakeHub.calls = []
    result = _cli("push", root / "run", "--repo-id", "me/star-gsm8k", "--private")
    assert result.exit_code == 0, result.output
    (_, repo, create), (_, _, upload) = FakeHub.calls
    assert repo == "me/star-gsm8k" and create == {"repo_type": "model", "private": True, "exist_ok": True}
    assert {"README.md", "adapter_config.json", "adapter_model.safetensors"} <= set(upload["files"])
    assert "hub.example/me/star-gsm8k" in result.output
    FakeHub.calls = []
    result = _cli("export", root / "run", "--out", tmp_path / "ex", "--push-to-hub", "me/rationales")
    assert result.exit_code == 0, result.output
    (_, _, create), (_, _, upload) = FakeHub.calls
    assert create["repo_type"] == "dataset" and "dataset/*" in upload["ignore_patterns"]
    assert {"README.md", "data/train.jsonl", "lm_eval/selftaught_gsm8k.yaml"} <= set(upload["files"])


def test_push_without_a_token_is_one_clear_line(lora_run, monkeypatch):
    import huggingface_hub
    from huggingface_hub.errors import LocalTokenNotFoundError

    _, root, _ = lora_run

    class NoToken(FakeHub):
        def create_repo(self, repo_id, **kwargs):
            raise LocalTokenNotFoundError("Token is required (`token=True`), but no token found.")

    monkeypatch.setattr(huggingface_hub, "HfApi", NoToken)
    result = _cli("push", root / "run", "--repo-id", "me/x")
    assert result.exit_code == 2 and "cannot push" in result.output and "no token found" in result.output
