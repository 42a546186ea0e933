"""train.objective=rpo (issue 25, item 5): the generator trained with iterative reasoning preference
optimisation (DPO on its own (kept, wrong) rationales of the same question, plus NLL on the kept)."""

from __future__ import annotations

import shutil

import pytest
import torch
from safetensors.torch import load_file

from selftaught import rundir, star
from selftaught.config import ConfigError, config_from_dict
from selftaught.loop import run_star
from selftaught.models import load_model
from selftaught.rundir import IterationMetrics
from selftaught.samples import Pair, Record, Sample, write_rows
from selftaught.training.phase import TrainJob, run_job
from selftaught.training.preference import encode_response
from selftaught.training.rpo import nll_only, rpo_triples
from selftaught.verifier.pairs import rpo_pairs
from selftaught.verifier.score import response_logprobs
from tests.conftest import tiny_run_config
from tests.tiny_hf import save_tiny


@pytest.fixture(autouse=True)
def _threads():
    """One torch thread (overrides conftest's two): the models are tiny, and on a shared, loaded 2-core
    machine two threads wait on each other (M0's pretraining measured 27 s on one thread, 308 s on two)."""
    torch.set_num_threads(1)


# ------------------------------------------------------------------------------------------------ config
def test_objective_is_checked_and_rpo_needs_star_and_one_process(tmp_path):
    with pytest.raises(ConfigError, match=r"train\.objective must be one of \['sft', 'rpo'\], got 'dpo'"):
        tiny_run_config(tmp_path, train={"objective": "dpo"})
    with pytest.raises(ConfigError, match="train.objective=rpo needs loop.mode=star") as err:
        tiny_run_config(tmp_path, train={"objective": "rpo"}, loop={"mode": "direct"})
    assert len(str(err.value).splitlines()) == 1
    with pytest.raises(ConfigError, match="train.objective=rpo trains in one process"):
        tiny_run_config(tmp_path, train={"objective": "rpo", "batch_size": 16}, distributed={"train_processes": 2})
    with pytest.raises(ConfigError, match="train.rpo_beta must be > 0"):
        tiny_run_config(tmp_path, train={"objective": "rpo", "rpo_beta": 0.0})
    assert tiny_run_config(tmp_path).train.objective == "sft"  # the paper's SFT stays the default


# ------------------------------------------------------------------------------------------------- pairs
def sample(qid, k, text, correct, verified=None, hinted=False):
    verified = correct if verified is None else verified
    return Sample(qid, hinted, k, text, "7" if correct else "3", correct, verified, None if verified else "bad step")


def test_pairs_put_kept_records_against_wrong_samples_of_their_own_question(tmp_path):
    task = star_task(tmp_path)
    examples = task.load("train")[:4]
    a, b, c, d = (ex.id for ex in examples)
    rows = [
        sample(a, 0, "a-right", True),
        sample(a, 1, "a-wrong", False),
        sample(a, 2, "a-wrong", False),  # sampled twice: one rejected text
        sample(a, 3, "a-bad-step", True, verified=False),  # right answer, failed step check
        sample(b, 0, "b-right", True),  # b has no wrong sample: NLL only
        sample(c, 0, "c-wrong-1", False),  # c: rationalized; its wrong first attempts are the rejected
        sample(c, 1, "c-wrong-2", False),
        sample(c, 0, "c-hinted-right", True, hinted=True),
        sample(c, 1, "c-hinted-wrong", False, hinted=True),  # saw the answer: never a rejected
        sample(d, 0, "d-wrong", False),  # d: nothing kept, so nothing to prefer
    ]
    records = star.training_records(task, examples, rows, "answer+rationale")
    pairs = rpo_pairs(records, rows, "answer+rationale", 3)
    assert [(p.id, p.chosen, p.rejected) for p in pairs] == [
        (a, "a-right", "a-wrong"),
        (a, "a-right", "a-bad-step"),
        (c, "c-hinted-right", "c-wrong-1"),
        (c, "c-hinted-right", "c-wrong-2"),
    ]
    assert {p.iteration for p in pairs} == {3}
    kept = {(r.id, r.completion) for r in records}
    assert all((p.id, p.chosen) in kept for p in pairs)  # chosen: the training records, nothing else
    wrong = {(r.id, r.text) for r in rows if not r.hinted and not star.is_kept(r, "answer+rationale")}
    assert all((p.id, p.rejected) in wrong for p in pairs)  # rejected: that question's own wrong samples
    assert [r.id for r in nll_only(records, pairs)] == [b]
    prompt_b = next(r.prompt for r in records if r.id == b)
    assert rpo_triples(records, pairs)[-1] == (prompt_b, "b-right", "b-right")  # NLL only: DPO term is constant
    # under filter=answer a right answer with a failed step check is kept, so it is chosen, never rejected
    loose = rpo_pairs(star.training_records(task, examples, rows, "answer"), rows, "answer", 1)
    assert (a, "a-bad-step", "a-wrong") in {(p.id, p.chosen, p.rejected) for p in loose}
    assert all(p.rejected != "a-bad-step" for p in loose)


def test_metrics_type_the_objective_and_pairs_and_keep_unknown_keys(tmp_path):
    row = {"iteration": 1, "accuracy": 0.5, "accuracy_by_bucket": {"1": 0.5}, "train_objective": "rpo"}
    row |= {"num_pairs": 3, "num_nll_only": 1, "from_a_later_version": {"x": 1}}
    metrics = IterationMetrics.from_json(row, tmp_path / "metrics.json")
    assert (metrics.train_objective, metrics.num_pairs, metrics.num_nll_only) == ("rpo", 3, 1)
    assert metrics.extra == {"from_a_later_version": {"x": 1}} and metrics.to_json() == row
    assert metrics.counts() == {"num_pairs": 3, "num_nll_only": 1}


def star_task(tmp_path):
    from selftaught.tasks import make_task

    return make_task(tiny_run_config(tmp_path))


# ---------------------------------------------------------------------------------- training behaviour
PROMPTS = [f"Q: {a} plus {b}?\nA:" for a, b in [(1, 2), (3, 4), (2, 5), (6, 1), (4, 4), (5, 3)]]
CHOSEN = [" 3 done", " 7 done", " 7 done", " 7 done", " 8 done", " 8 done"]
REJECTED = [" 4 done", " 9 done", " 1 done", " 2 done", " 6 done", " 5 done"]


STEPS = 15


@pytest.mark.parametrize("lora, from_m0", [(False, True), (True, True), (True, False)], ids=["full", "lora", "lora-m1"])
def test_rpo_raises_the_margin_of_chosen_over_rejected(tmp_path, lora, from_m0):
    """From M0 under LoRA the reference is the adapters switched off; from another model (lora-m1:
    loop.restart_from_base=false) or with full fine-tuning it is M0 loaded beside it."""
    corpus = PROMPTS + CHOSEN + REJECTED + [" 9 done"]
    m0 = save_tiny(tmp_path / "m0", corpus, pairs=[])
    init = m0 if from_m0 else shutil.copytree(m0, tmp_path / "m1")
    records = [Record(f"q{k}", p, c, "generated") for k, (p, c) in enumerate(zip(PROMPTS, CHOSEN))]
    records.append(Record("solo", "Q: 4 plus 5?\nA:", " 9 done", "generated"))  # no wrong sample: NLL only
    pairs = [Pair(f"q{k}", c, r, 1) for k, (c, r) in enumerate(zip(CHOSEN, REJECTED))]
    write_rows(tmp_path / "train.jsonl", records)
    write_rows(tmp_path / "pairs.jsonl", pairs)
    train = {"objective": "rpo", "batch_size": 7, "learning_rate": 1e-2 if lora else 2e-3, "save_every_steps": 0}
    train["precision"] = "fp32"  # bf16 autocast is slower on tiny CPU matrices
    lora_section = {"enabled": lora, "r": 8, "alpha": 16}
    config = config_from_dict({"model": {"name_or_path": str(init), "lora": lora_section}, "train": train})
    job = TrainJob(
        str(init), str(tmp_path / "train.jsonl"), STEPS, str(tmp_path / "scratch"), str(tmp_path / "logs"),
        "rpo test", config.to_dict(), str(tmp_path / "pairs.jsonl"), str(m0),
    )  # fmt: skip

    def margins_and_solo(path):
        lm = load_model(path, config.model)
        encoded = [encode_response(lm, p, text, 64) for p, c, r in zip(PROMPTS, CHOSEN, REJECTED) for text in (c, r)]
        logps = response_logprobs(lm, encoded + [encode_response(lm, records[-1].prompt, " 9 done", 64)])
        return [logps[i] - logps[i + 1] for i in range(0, len(encoded), 2)], logps[-1]

    before, solo_before = margins_and_solo(init)
    log = run_job(job, tmp_path / "out")
    after, solo_after = margins_and_solo(tmp_path / "out")
    assert log and all(after[k] > before[k] for k in range(len(before))), (before, after)
    assert sum(after) / len(after) > sum(before) / len(before) + 1.0
    assert solo_after > solo_before + 1.0  # the unpaired record is learned through the NLL term
    assert (tmp_path / "out" / "adapter_config.json").is_file() == lora  # saved as SFT saves: adapter on M0
    assert not (tmp_path / "out" / "ref").exists()  # TRL's reference adapter is not part of the model


# ------------------------------------------------------------------------------------- a whole iteration
RPO_TRAIN = {"objective": "rpo", "first_steps": 8, "batch_size": 8, "learning_rate": 1e-3, "save_every_steps": 4}


def rpo_config(tmp):
    return tiny_run_config(tmp, generation={"num_samples": 4, "temperature": 1.0}, train=RPO_TRAIN)


@pytest.fixture(scope="module")
def rpo_run(tmp_path_factory):
    torch.set_num_threads(1)  # a module fixture is set up before the function-scoped _threads
    tmp = tmp_path_factory.mktemp("rpo")
    config = rpo_config(tmp)
    return config, tmp, run_star(config, tmp / "run")


@pytest.mark.slow
def test_an_rpo_iteration_records_its_objective_and_pairs_and_evaluates(rpo_run):
    from selftaught.evaluate import evaluate_model, resolve_model

    config, tmp, summary = rpo_run
    folder = rundir.RunDir(tmp / "run").iteration(1)
    metrics = summary.iterations[0]
    pairs = rundir.read_jsonl(folder.pairs)
    assert metrics.train_objective == "rpo" and metrics.num_pairs == len(pairs) > 0
    assert 0 < metrics.num_nll_only < metrics.num_train_examples
    assert (folder.checkpoint / "model.safetensors").is_file() and not (folder / ".trainer").exists()
    assert "iterative reasoning preference optimisation" in (folder.checkpoint / "README.md").read_text()
    result = evaluate_model(config, resolve_model(str(tmp / "run"), config))
    assert result["accuracy"] == pytest.approx(metrics.accuracy)
    init = load_file(f"{summary.base_model}/model.safetensors")
    trained = load_file(folder.checkpoint / "model.safetensors")
    assert any((trained[k] - init[k]).abs().max() > 1e-4 for k in init)


@pytest.mark.slow
def test_a_kill_in_the_rpo_train_phase_resumes_to_the_same_checkpoint(rpo_run, monkeypatch):
    import selftaught.loop as loop

    config, tmp, summary = rpo_run
    run = tmp / "killed"
    real = loop.check_loss

    def killed_at_step_6(loss, step, label):
        if step == 6:  # after the Trainer's checkpoint at step 4
            raise KeyboardInterrupt("simulated kill")
        return real(loss, step, label)

    monkeypatch.setattr(loop, "check_loss", killed_at_step_6)
    with pytest.raises(KeyboardInterrupt):
        run_star(config, run)
    folder = rundir.RunDir(run).iteration(1)
    assert (folder / ".trainer" / "checkpoint-4").is_dir() and not folder.checkpoint.exists()
    assert "train" not in rundir.read_json(folder.phases_file)
    monkeypatch.setattr(loop, "check_loss", real)
    resumed = run_star(None, run, resume=True)
    assert resumed.iterations[0].to_json()["num_pairs"] == summary.iterations[0].num_pairs
    assert resumed.iterations[0].accuracy == summary.iterations[0].accuracy
    a = load_file(tmp / "run" / "iter_001" / "checkpoint" / "model.safetensors")
    b = load_file(folder.checkpoint / "model.safetensors")
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-5
    shutil.rmtree(run)
