"""V-STaR's verifier (issue 25): pairs, the Verifier@k estimator, DPO training, best of k, resume, CLI."""

from __future__ import annotations

import itertools
import random
import shutil
from math import comb

import pytest
from safetensors.torch import load_file

from selftaught import rundir
from selftaught.config import ConfigError
from selftaught.loop import run_star
from selftaught.samples import Sample
from selftaught.verifier.estimate import majority_at_k, pass_at_k, verifier_at_k
from selftaught.verifier.pairs import Pair, build_pairs, pair_counts, read_pairs
from tests.cli.test_cli import run_cli
from tests.conftest import tiny_run_config

pytestmark = pytest.mark.slow  # whole STaR runs: seconds to minutes each


def row(qid, sample, text, correct, verified=None, hinted=False):
    verified = correct if verified is None else verified
    return Sample(qid, hinted, sample, text, "7" if correct else "3", correct, verified, None if verified else "x")


# ----------------------------------------------------------------------------------------------- pairs
def test_pairs_pair_right_with_wrong_of_the_same_question_only():
    rows = [
        row("a", 0, "a-right", True),
        row("a", 1, "a-wrong", False),
        row("a", 2, "a-bad-step", True, verified=False),  # right answer, failed step check: wrong
        row("a", 3, "a-right", True),  # sampled twice: one text
        row("b", 0, "b-right", True),  # b has no wrong sample: no pair
        row("c", 0, "c-wrong", False),  # c has no right sample: no pair
        row("a", 0, "a-hinted", True, hinted=True),  # rationalization saw the answer: never used
    ]
    pairs = build_pairs({1: rows})
    assert pairs == [Pair("a", "a-right", "a-wrong", 1), Pair("a", "a-right", "a-bad-step", 1)]
    assert all(p.id == "a" for p in pairs)


def test_pairs_accumulate_over_iterations_each_pair_once():
    first = [row("a", 0, "r1", True), row("a", 1, "w1", False)]
    second = [row("a", 0, "r1", True), row("a", 1, "w1", False), row("a", 2, "w2", False), row("b", 0, "rb", True)]
    second.append(row("b", 1, "wb", False))
    pairs = build_pairs({2: second, 1: first})
    assert [(p.id, p.chosen, p.rejected, p.iteration) for p in pairs] == [
        ("a", "r1", "w1", 1),  # seen in both iterations: credited to the first
        ("a", "r1", "w2", 2),
        ("b", "rb", "wb", 2),
    ]
    assert pair_counts(pairs) == {"num_pairs": 3, "num_questions": 2, "pairs_by_iteration": {"1": 1, "2": 2}}


# ------------------------------------------------------------------------------------------ estimators
def brute_verifier_at_k(scores, correct, k):
    """Mean over every k-subset of the correctness of its top-scored sample, ties split evenly."""
    total = 0.0
    for subset in itertools.combinations(range(len(scores)), k):
        best = max(scores[i] for i in subset)
        top = [i for i in subset if scores[i] == best]
        total += sum(correct[i] for i in top) / len(top)
    return total / comb(len(scores), k)


@pytest.mark.parametrize("seed", range(40))
def test_verifier_at_k_equals_enumeration_over_all_k_subsets(seed):
    rng = random.Random(seed)
    n = rng.randint(1, 8)
    scores = [float(rng.randint(0, 3 if seed % 2 else 100)) for _ in range(n)]  # odd seeds: many ties
    correct = [rng.random() < 0.4 for _ in range(n)]
    for k in range(1, n + 1):
        assert verifier_at_k(scores, correct, k) == pytest.approx(brute_verifier_at_k(scores, correct, k), abs=1e-12)
        right = sum(correct)
        brute_pass = sum(any(correct[i] for i in s) for s in itertools.combinations(range(n), k)) / comb(n, k)
        assert pass_at_k(n, right, k) == pytest.approx(brute_pass, abs=1e-12)


def test_verifier_at_k_without_ties_is_the_rank_formula():
    scores, correct = [0.3, 2.0, -1.0, 0.9, 1.5], [True, False, True, False, True]
    order = sorted(range(5), key=lambda i: -scores[i])  # rank i is the top of C(n-i-1, k-1) of C(n, k) subsets
    for k in range(1, 6):
        formula = sum(comb(5 - i - 1, k - 1) * correct[j] for i, j in enumerate(order)) / comb(5, k)
        assert verifier_at_k(scores, correct, k) == pytest.approx(formula)


def test_majority_at_k_is_exact_on_few_subsets_and_refuses_bad_k():
    answers = ["7", "3", "7", None, "5"]
    brute = 0.0
    for subset in itertools.combinations(range(5), 3):
        votes = [answers[i] for i in subset if answers[i] is not None]
        counts = {a: votes.count(a) for a in votes}
        top = [a for a in counts if counts[a] == max(counts.values())] if counts else []
        brute += (sum(a == "7" for a in top) / len(top)) if top else 0.0
    assert majority_at_k(answers, {"7"}, 3) == pytest.approx(brute / comb(5, 3))
    with pytest.raises(ValueError, match="k must be in 1..n"):
        verifier_at_k([1.0, 2.0], [True, False], 3)
    with pytest.raises(ValueError, match="k must be in 1..n"):
        pass_at_k(4, 1, 0)


def test_checked_majority_at_k_equals_enumeration_of_votes_by_checked_samples():
    answers, checked = ["7", "3", "3", "7", "3"], [True, False, False, True, True]
    brute = 0.0
    for subset in itertools.combinations(range(5), 3):
        voters = [i for i in subset if checked[i]] or list(subset)  # none checks: everyone votes
        votes = [answers[i] for i in voters]
        counts = {a: votes.count(a) for a in votes}
        top = [a for a in counts if counts[a] == max(counts.values())]
        brute += sum(a == "7" for a in top) / len(top)
    assert majority_at_k(answers, {"7"}, 3, checked=checked) == pytest.approx(brute / comb(5, 3))
    assert majority_at_k(answers, {"7"}, 3, checked=checked) > majority_at_k(answers, {"7"}, 3)
    with pytest.raises(ValueError, match="step-check flags"):
        majority_at_k(answers, {"7"}, 3, checked=[True])


# ------------------------------------------------------------------------------ training on a real run
VERIFIER = {"steps": 24, "batch_size": 8, "learning_rate": 1e-3, "save_every_steps": 8}


def verifier_run_config(tmp_path):
    return tiny_run_config(
        tmp_path,
        generation={"num_samples": 4, "temperature": 1.0},
        loop={"iterations": 1, "filter": "answer+rationale", "verifier": True},
        verifier=VERIFIER,
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("verifier")
    config = verifier_run_config(tmp)
    summary = run_star(config, tmp / "run")
    return config, tmp / "run", summary


def test_the_loop_trains_a_verifier_into_the_run_directory(trained):
    config, root, summary = trained
    folder = root / "verifier"
    assert summary.verifier["num_pairs"] == len(read_pairs(folder / "pairs.jsonl")) > 0
    assert set(rundir.read_json(folder / "phases.json")) == {"pairs", "train"}
    assert (folder / "checkpoint" / "model.safetensors").is_file()
    info = rundir.read_json(folder / "checkpoint" / "verifier.json")
    assert info["reference"] == str((root / "iter_001" / "checkpoint").resolve())  # init: last (the SFT model)
    card = (folder / "checkpoint" / "README.md").read_text()
    assert "DPOTrainer" in card and "selftaught eval GENERATOR --samples 16 --verifier" in card
    assert not (folder / ".trainer").exists()


def test_the_verifier_ranks_right_above_wrong_on_its_training_pairs(trained):
    """Before DPO the score (a log-ratio against itself) is 0 for every solution: no ranking at all."""
    from selftaught.tasks import make_task
    from selftaught.verifier.score import Scorer

    config, root, _ = trained
    task = make_task(config)
    by_id = {ex.id: ex for ex in task.load("train")}
    pairs = read_pairs(root / "verifier" / "pairs.jsonl")
    scorer = Scorer(root / "verifier" / "checkpoint", config.model)
    prompts = [task.prompt(by_id[p.id], hint=False, few_shot=scorer.info.few_shot) for p in pairs]
    chosen = scorer.score(prompts, [p.chosen for p in pairs])
    rejected = scorer.score(prompts, [p.rejected for p in pairs])
    ranked_right = sum(c > r for c, r in zip(chosen, rejected)) / len(pairs)
    assert ranked_right >= 0.9, ranked_right
    assert sum(chosen) / len(chosen) > sum(rejected) / len(rejected) + 0.1  # a margin, not a coin flip


def test_a_kill_in_the_verifier_phase_resumes_to_the_same_checkpoint(trained, tmp_path, monkeypatch):
    from selftaught.verifier import train as verifier_train

    config, root, _ = trained
    run = tmp_path / "run"
    shutil.copytree(root, run, ignore=shutil.ignore_patterns("verifier"))  # the STaR iterations are done
    real = verifier_train.check_loss

    def killed_at_step_12(loss, step, label):
        if step == 12:  # after the Trainer's checkpoint at step 8
            raise KeyboardInterrupt("simulated kill")
        return real(loss, step, label)

    monkeypatch.setattr(verifier_train, "check_loss", killed_at_step_12)
    with pytest.raises(KeyboardInterrupt):
        run_star(None, run, resume=True)
    assert (run / "verifier" / ".trainer" / "checkpoint-8").is_dir()
    assert not (run / "verifier" / "checkpoint").exists()
    monkeypatch.setattr(verifier_train, "check_loss", real)
    resumed = run_star(None, run, resume=True)
    assert resumed.verifier["num_pairs"] == rundir.read_json(root / "verifier" / "metrics.json")["num_pairs"]
    a = load_file(root / "verifier" / "checkpoint" / "model.safetensors")
    b = load_file(run / "verifier" / "checkpoint" / "model.safetensors")
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-5
    init = load_file(root / "iter_001" / "checkpoint" / "model.safetensors")
    assert any((a[k] - init[k]).abs().max() > 1e-4 for k in a)  # it trained


def test_best_of_k_reports_verifier_at_k_beside_pass_and_maj(trained):
    from selftaught.evaluate import resolve_model
    from selftaught.verifier.bestofk import evaluate_best_of_k

    config, root, _ = trained
    result = evaluate_best_of_k(config, resolve_model(str(root), config), root, 4, 1.0)
    assert {"pass@1", "maj@4", "pass@4", "verifier@1", "verifier@2", "verifier@4", "seconds_scoring"} <= set(result)
    assert {"checked_maj@1", "checked_maj@4"} <= set(result)  # the task's step check as a second picker
    assert result["verifier@1"] == pytest.approx(result["pass@1"])  # one sample: nothing to pick from
    assert result["checked_maj@4"] <= result["pass@4"] + 1e-12
    assert result["verifier@4"] <= result["pass@4"] + 1e-12
    assert all(0 <= result[key] <= 1 for key in result if "@" in key)


def test_verifier_train_command_writes_another_folder_and_rpo_adds_the_sft_loss(trained, tmp_path):
    from selftaught.verifier.train import dpo_args, with_verifier_overrides

    config, root, _ = trained
    out = tmp_path / "v2"
    done = run_cli(
        "verifier", "train", str(root), "--set", "verifier.steps=2", "--set", "verifier.init=base", "--out", str(out)
    )
    assert done.returncode == 0, done.stderr
    assert "pairs over" in done.stdout and (out / "checkpoint" / "verifier.json").is_file()
    assert (
        rundir.read_json(out / "checkpoint" / "verifier.json")["reference"]
        == rundir.read_json(root / "summary.json")["base_model"]
    )  # init: base starts from M0
    rpo = with_verifier_overrides(config, ["verifier.loss=rpo"])
    assert dpo_args(rpo, tmp_path, cuda=False).loss_type == ["sigmoid", "sft"]
    assert dpo_args(config, tmp_path, cuda=False).loss_type == ["sigmoid"]


# ---------------------------------------------------------------------------------------- bad input
def test_verifier_needs_several_samples_per_question(tmp_path):
    with pytest.raises(ConfigError, match="loop.verifier needs generation.num_samples > 1"):
        tiny_run_config(tmp_path, loop={"verifier": True})
    with pytest.raises(ConfigError, match="verifier.init must be one of"):
        tiny_run_config(tmp_path, verifier={"init": "sft"})


def test_cli_bad_input_is_one_line_exit_2(trained, tmp_path):
    _, root, _ = trained
    cases = [
        (["verifier", "train", str(tmp_path / "missing")], "is not a run directory"),
        (["verifier", "train", str(root), "--set", "loop.iterations=3"], "verifier.* settings only"),
        (["verifier", "train", str(root), "--set", "verifier.iterations=4"], "verifier.iterations=4"),
        (["eval", str(root), "--samples", "4", "--verifier", str(tmp_path)], "no verifier.json"),
        (["eval", str(root), "--samples", "1", "--verifier", str(root)], "--samples must be >= 2"),
    ]
    for args, fragment in cases:
        done = run_cli(*args)
        assert done.returncode == 2, (args, done.stderr)
        assert fragment in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
