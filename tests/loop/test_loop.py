"""End to end on a seconds-long arithmetic run, and resume after a crash."""

import pytest

from selftaught import rundir
from selftaught.loop import NothingToTrain, run_star
from selftaught.tasks import make_task
from tests.conftest import tiny_run_config

pytestmark = pytest.mark.slow  # whole STaR runs: seconds to minutes each

ROW_KEYS = {"id", "hinted", "sample", "text", "answer", "correct", "verified", "problem", "truncated"}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("run")
    config = tiny_run_config(tmp, loop={"iterations": 2, "filter": "answer"})
    summary = run_star(config, tmp / "run")
    return config, tmp / "run", summary


def test_one_run_writes_the_run_directory(finished):
    config, root, summary = finished
    assert (root / "config.yaml").is_file() and (root / "summary.json").is_file()
    for n in (1, 2):
        folder = root / f"iter_{n:03d}"
        generated = rundir.read_jsonl(folder / "generated.jsonl")
        assert generated and set(generated[0]) == ROW_KEYS
        assert any(row["hinted"] for row in generated)  # rationalization ran
        train = rundir.read_jsonl(folder / "train.jsonl")
        assert train and {"id", "prompt", "completion", "source"} <= set(train[0])
        assert all("(" not in r["prompt"] for r in train)  # the hint never reaches training text
        assert (folder / "checkpoint" / "model.safetensors").is_file()
        card = (folder / "checkpoint" / "README.md").read_text()  # digit positions: the card says to use selftaught
        assert f"iteration {n}" in card and "selftaught eval" in card
        assert make_task(config).prompt(make_task(config).load("test")[0]) in card  # the exact prompt format
        metrics = rundir.read_json(folder / "metrics.json")
        assert set(metrics["seconds"]) == {"generate", "rationalize", "train", "evaluate"}
        if metrics["peak_rss_mib"]:  # Linux: every phase's peak resident memory, nonzero
            assert set(metrics["peak_rss_mib"]) == set(metrics["seconds"])
            assert all(mib > 0 for mib in metrics["peak_rss_mib"].values())
    rows = summary.iterations
    assert [r.iteration for r in rows] == [1, 2]
    for row in rows:
        assert {
            "iteration",
            "accuracy",
            "accuracy_by_bucket",
            "num_kept",
            "num_rationalized",
            "train_steps",
            "seconds",
        } <= set(row.to_json())
        assert set(row.accuracy_by_bucket) == {"1", "2", "3"}
        assert all(0.0 <= v <= 1.0 for v in row.accuracy_by_bucket.values())
    assert rows[1].train_steps == round(config.train.first_steps * 1.2)
    # M0 was trained on 1-2 digit sums only; it must beat chance on them
    assert summary.base.accuracy_by_bucket["1"] > 0.3


def test_rerun_into_same_directory_is_refused(finished):
    config, root, _ = finished
    from selftaught.config import ConfigError

    with pytest.raises(ConfigError, match="already holds a run"):
        run_star(config, root)


def test_resume_after_crash_gives_the_same_result(finished, tmp_path, monkeypatch):
    config, root, summary = finished
    from selftaught import loop

    calls = {"n": 0}
    real_train = loop.Engine.train

    def crash_in_second_training(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("simulated kill")
        return real_train(self, *args, **kwargs)

    monkeypatch.setattr(loop.Engine, "train", crash_in_second_training)
    with pytest.raises(KeyboardInterrupt):
        run_star(config, tmp_path / "run")
    assert rundir.RunDir(tmp_path / "run").finished_iterations() == [1]
    assert not (tmp_path / "run" / "iter_002" / "checkpoint").exists()
    monkeypatch.setattr(loop.Engine, "train", real_train)
    resumed = run_star(None, tmp_path / "run", resume=True)
    for n in (1, 2):
        name = f"iter_{n:03d}/train.jsonl"
        assert rundir.read_jsonl(tmp_path / "run" / name) == rundir.read_jsonl(root / name)
    assert [r.accuracy_by_bucket for r in resumed.iterations] == [r.accuracy_by_bucket for r in summary.iterations]


def test_an_iteration_that_keeps_nothing_stops_with_m0_evaluated(finished, tmp_path, monkeypatch):
    """No kept sample: a clear error (the CLI exits 2), and M0's evaluation is on disk (ablation tables use it)."""
    from selftaught import star

    config, _, summary = finished
    monkeypatch.setattr(star, "training_records", lambda *args, **kwargs: [])
    with pytest.raises(NothingToTrain, match="iteration 1: no rationale reached the right answer"):
        run_star(config, tmp_path / "empty")
    base = rundir.read_json(tmp_path / "empty" / "base" / "metrics.json")
    assert base["accuracy"] == summary.base.accuracy
    assert rundir.read_jsonl(tmp_path / "empty" / "iter_001" / "train.jsonl") == []


def test_eval_reproduces_the_run_and_reports_maj_and_pass(finished):
    from selftaught.evaluate import evaluate_model, resolve_model

    config, root, summary = finished
    path = resolve_model(str(root), config)
    assert path.endswith("iter_002/checkpoint")
    result = evaluate_model(config, path, num_samples=3, temperature=1.0)
    assert result["accuracy_by_bucket"] == summary.iterations[-1].accuracy_by_bucket
    assert 0 <= result["maj@3"] <= result["pass@3"] <= 1
    base = evaluate_model(config, resolve_model(str(root), config, iteration=0))
    assert base["accuracy_by_bucket"] == summary.base.accuracy_by_bucket


def test_score_samples_majority_and_pass():
    from selftaught.evaluate import score_samples
    from selftaught.tasks.arithmetic import ArithmeticTask
    from selftaught.tasks.base import Example

    task = ArithmeticTask([1], [1], 1, 1)
    examples = [Example("a", "2+3", "5"), Example("b", "4+4", "8")]
    samples = [["|5", "|6", "|5"], ["|9", "|8", "|9"]]  # reversed answers: 5 right twice; 8 right once
    # no sample shows its steps, so none checks and all vote: checked_maj@k is maj@k
    assert score_samples(task, examples, samples) == {"maj@3": 0.5, "pass@3": 1.0, "checked_maj@3": 0.5}


def test_checked_majority_lets_only_samples_whose_steps_check_vote():
    from selftaught.evaluate import score_samples
    from selftaught.tasks.arithmetic import ArithmeticTask, compact_completion
    from selftaught.tasks.base import Example

    task = ArithmeticTask([1], [1], 1, 1)
    examples = [Example("b", "4+4", "8")]
    worked = compact_completion("4", "4")  # every column checks, answer 8
    assert score_samples(task, examples, [["|9", "|9", worked]]) == {"maj@3": 0.0, "pass@3": 1.0, "checked_maj@3": 1.0}
    # a worked rationale whose steps do not check gets no vote either
    wrong_steps = worked.replace("|", "7|")
    assert task.verify_rationale(examples[0], wrong_steps) is not None
    assert score_samples(task, examples, [["|9", "|9", wrong_steps]])["checked_maj@3"] == 0.0
