"""The embedded word-problem task (issue 11): GSM8K's format and grader on generated problems."""

import json
import random

import pytest

from selftaught.config import ConfigError, config_from_dict
from selftaught.tasks import make_task
from selftaught.tasks.gsm8k import GSM8KTask
from selftaught.tasks.word_problems import make_problem

pytestmark = pytest.mark.slow  # whole STaR runs: seconds to minutes each


def task(**settings):
    return make_task(config_from_dict({"task": {"name": "word_problems", "word_problems": settings}}))


def test_gold_solutions_pass_the_gsm8k_grader_and_step_check():
    t = task(train_per_step=30, test_per_step=30)
    assert isinstance(t, GSM8KTask)  # the grading is GSM8K's own
    for example in t.load("train") + t.load("test"):
        solution = dict(example.meta)["solution"]
        assert t.check(t.extract_answer(solution), example)
        assert t.verify_rationale(example, solution) is None
        assert solution.count("<<") == int(t.bucket(example))
        assert t.check(t.extract_answer(t.direct_completion(example)), example)


def test_a_wrong_step_or_answer_is_caught():
    t = task(train_per_step=5, test_per_step=5)
    example = t.load("test")[-1]
    solution = dict(example.meta)["solution"]
    first = solution.split("\n")[0]  # "a+b = <<a+b=c>>c"
    value = first.rsplit(">>", 1)[1]
    wrong_step = solution.replace(f"={value}>>", f"={int(value) + 1}>>", 1)
    assert t.verify_rationale(example, wrong_step) is not None
    assert not t.check(t.extract_answer(solution.replace(f"#### {example.answer}", "#### 1000")), example)


def test_a_rationale_that_skips_steps_passes_gsm8k_step_check_but_not_check_every_step():
    strict, gsm8k_only = task(), task(check_every_step=False)
    example = next(ex for ex in strict.load("test") if strict.bucket(ex) == "3")
    lines = dict(example.meta)["solution"].split("\n")
    skipped = "\n".join(lines[:2]) + f"\n#### {example.answer}"  # two right lines, the answer copied
    assert gsm8k_only.verify_rationale(example, skipped) is None  # every annotation is right
    assert strict.verify_rationale(example, skipped) == "2 calculation(s) for a 3-step problem"
    assert strict.verify_rationale(example, dict(example.meta)["solution"]) is None


def test_splits_and_few_shot_examples_are_disjoint_and_reproducible():
    t = task(train_per_step=100, test_per_step=50, max_number=10)  # small numbers: collisions happen
    train, test = t.load("train"), t.load("test")
    prompt = t.prompt(test[0])
    shots = [line[3:] for line in prompt.split("\n") if line.startswith("Q: ")][:-1]
    assert len(shots) == 4
    questions = [ex.question for ex in train] + [ex.question for ex in test]
    assert len(set(questions)) == len(questions) and not set(shots) & set(questions)
    assert [ex.id for ex in task(train_per_step=100, test_per_step=50, max_number=10).load("train")] == [
        ex.id for ex in train
    ]
    assert {t.bucket(ex) for ex in test} == {"2", "3", "4", "5"}


def test_prompts_are_gsm8k_few_shot_blocks_and_the_hint_shows_the_answer():
    t = task(train_per_step=5, test_per_step=5)
    example = t.load("test")[0]
    assert t.prompt(example).endswith(f"Q: {example.question}\nA:")
    assert t.prompt(example, hint=True).endswith(f"Q: {example.question} ({example.answer})\nA:")
    assert t.prompt(example, few_shot=False) == f"Q: {example.question}\nA:"
    assert t.stop().cut(" 2+3 = <<2+3=5>>5\n#### 5\n\nQ: Ann has 3 pens.") == " 2+3 = <<2+3=5>>5\n#### 5"


def test_numbers_stay_bounded():
    rng = random.Random(1)
    for _ in range(500):
        problem = make_problem(rng, rng.randint(1, 8), 20, max_value=99)
        values = [int(line.rsplit(">>", 1)[1]) for line in problem.solution.split("\n")[:-1]]
        assert all(0 < v <= 99 for v in values)
        told = [int(w.rstrip(".")) for w in problem.question.split()[3:] if w.rstrip(".").isdigit()]
        assert all(n <= 20 for n in told)


@pytest.mark.parametrize(
    "settings, fragment",
    [
        ({"train_steps": []}, "task.word_problems.train_steps must be a non-empty list"),
        ({"test_steps": [0]}, "task.word_problems.test_steps must be a non-empty list"),
        ({"max_number": 1000}, "task.word_problems.max_number must be in 5..200"),
        ({"max_number": 60, "max_value": 99}, "task.word_problems.max_value must be in 2\\*max_number..9999"),
        ({"train_per_step": 0}, "task.word_problems.train_per_step must be >= 1"),
    ],
)
def test_bad_settings_name_the_key(settings, fragment):
    with pytest.raises(ConfigError, match=fragment):
        task(**settings)


def test_m0_pretraining_text_is_q_a_blocks_of_easy_problems_never_a_task_question():
    from selftaught.training.text_base_model import pretraining_documents

    config = config_from_dict(
        {
            "task": {"name": "word_problems", "word_problems": {"train_per_step": 20, "test_per_step": 20}},
            "model": {"base": {"steps": 10, "batch_size": 4, "hint_fraction": 0.3}},
        }
    )
    t = make_task(config)
    documents = pretraining_documents(config, t)
    assert len(documents) == 80  # two per row of the stream
    questions = [line[3:] for doc in documents for line in doc.split("\n") if line.startswith("Q: ")]
    assert len(questions) >= 3 * len(documents)
    assert not set(questions) & {ex.question for ex in t.load("train") + t.load("test")}
    # a share of the questions carry their answer as the hinted prompt does, so that M0 can use a hint
    hinted = [q for q in questions if q.endswith(")")]
    assert 0 < len(hinted) < len(questions) / 2
    assert all(doc.split(f"{q}\nA:", 1)[1].split("\n\n")[0].endswith(f"#### {q.rsplit('(', 1)[1][:-1]}")
               for doc in documents for q in hinted if q in doc)  # fmt: skip
    steps = [doc.count("<<") for doc in documents]
    answers = [doc.count("####") for doc in documents]
    assert all(answers[k] <= s <= 3 * answers[k] for k, s in enumerate(steps))  # 1 to 3 steps per problem


def test_sloppy_pretraining_solutions_stop_one_step_short_and_never_under_a_hint():
    from selftaught.tasks.answers import check_annotations
    from selftaught.tasks.base import Example
    from selftaught.training.text_base_model import pretraining_documents

    def blocks(sloppy):
        config = config_from_dict(
            {
                "task": {"name": "word_problems", "word_problems": {
                    "train_per_step": 20, "test_per_step": 20, "pretrain_steps": [3, 4], "pretrain_sloppy": sloppy}},
                "model": {"base": {"steps": 50, "batch_size": 4, "hint_fraction": 0.3}},
            }
        )  # fmt: skip
        for doc in pretraining_documents(config, make_task(config)):
            for block in doc.split("\n\n"):
                question, solution = block.removeprefix("Q: ").split("\nA: ")
                yield question, solution, question.count(".") - 1  # the story's first sentence, then a step each

    assert all(solution.count("<<") == steps for _, solution, steps in blocks(0.0))
    sloppy = list(blocks(0.6))
    short = [(q, s, n) for q, s, n in sloppy if s.count("<<") == n - 1]
    assert len(short) + sum(s.count("<<") == n for _, s, n in sloppy) == len(sloppy)
    assert 0.4 < len(short) / len(sloppy) < 0.6  # 0.6 of the unhinted ones (a fifth carry a hint)
    assert not [q for q, _, _ in short if q.endswith(")")]  # a hinted question always gets its whole solution
    t = task()
    for question, solution, steps in short:  # every line right, the answer is the value before the last step
        assert solution.endswith(f"#### {solution.split(chr(10))[-2].rpartition('>>')[2]}")
        assert not check_annotations(solution).problems
        example = Example("x", question, "0", (("steps", steps),))
        assert t.verify_rationale(example, solution) == f"{steps - 1} calculation(s) for a {steps}-step problem"


def test_pretraining_stream_is_the_documents_joined_by_eos_in_full_rows():
    from selftaught.models.bpe import train_bpe_tokenizer
    from selftaught.training.text_base_model import stream_rows

    documents = [f"Q: Ann has {k} pens. How many pens does Ann have now?\nA: #### {k}" for k in range(2, 40)]
    tokenizer = train_bpe_tokenizer(documents, vocab_size=300)
    rows = stream_rows(tokenizer, documents, 64)
    assert rows and all(len(row) == 64 for row in rows)
    text = tokenizer.decode([i for row in rows for i in row])
    joined = tokenizer.eos_token.join(documents) + tokenizer.eos_token
    assert joined.startswith(text) and len(joined) - len(text) < 64 * 4  # only the last partial row is dropped


def tiny_config(tmp_path, **loop):
    return config_from_dict(
        {
            "task": {
                "name": "word_problems",
                "word_problems": {"train_steps": [1, 2], "test_steps": [1, 2], "train_per_step": 16, "test_per_step": 8,
                                  "max_number": 5, "pretrain_steps": [1], "pretrain_max_number": 5},
            },
            "model": {
                "name_or_path": "embedded",
                "chat_template": "off",
                "base": {"num_layers": 2, "hidden_size": 64, "steps": 80, "batch_size": 4, "learning_rate": 3e-3,
                         "cache_dir": str(tmp_path / "cache")},
            },
            "generation": {"backend": "hf", "batch_size": 16},
            "train": {"first_steps": 4, "batch_size": 8, "save_every_steps": 0},
            "loop": {"iterations": 1, "patience": 0, "filter": "answer", **loop},
        }
    )  # fmt: skip


def test_star_runs_end_to_end_on_a_tiny_word_problem_configuration(tmp_path):
    from selftaught import rundir
    from selftaught.loop import run_star

    config = tiny_config(tmp_path)
    summary = run_star(config, tmp_path / "run")
    m0 = next((tmp_path / "cache").glob("text-*"))
    assert (m0 / "tokenizer.json").is_file() and (m0 / "model.safetensors").is_file()
    generated = rundir.read_jsonl(tmp_path / "run" / "iter_001" / "generated.jsonl")
    assert len([r for r in generated if not r["hinted"]]) == 32
    assert all("\nQ:" not in r["text"] for r in generated)  # cut at the next few-shot block
    assert set(summary.base.accuracy_by_bucket) == {"1", "2"}
    assert summary.base.accuracy_by_bucket["1"] > 0  # the pretrained M0 solves some 1-step problems
    kept = rundir.read_jsonl(tmp_path / "run" / "iter_001" / "train.jsonl")
    assert any("<<" in r["completion"] and "####" in r["completion"] for r in kept)  # rationales were kept
    assert (tmp_path / "run" / "iter_001" / "checkpoint" / "model.safetensors").is_file()


def test_fine_tuned_models_are_prompted_as_trained_when_few_shot_for_trained_is_off(tmp_path, monkeypatch):
    """The STaR code's --no_prompt: M0 reads the few-shot prefix; M1, M2 generate and are evaluated without it,
    as their training examples show them; `selftaught eval RUN` follows the run."""
    from typer.testing import CliRunner

    import selftaught.loop
    from selftaught.cli import app
    from selftaught.loop import run_star

    real_job, phases = selftaught.loop.ChunkJob, []

    def recording_job(index, prompts, *rest):
        phases.append({prompt.count("Q:") for prompt in prompts})
        return real_job(index, prompts, *rest)

    monkeypatch.setattr(selftaught.loop, "ChunkJob", recording_job)
    config = tiny_config(tmp_path, iterations=2, few_shot_for_trained=False)
    summary = run_star(config, tmp_path / "run")
    shots = config.task.word_problems.few_shot_examples
    # M0: evaluate, generate, rationalize (few-shot); M1: evaluate, generate, rationalize; M2: evaluate
    assert phases[:3] == [{shots + 1}] * 3
    assert phases[3:] == [{1}] * 4
    train = (tmp_path / "run" / "iter_001" / "train.jsonl").read_text().splitlines()
    assert train and all(line.count("Q:") == 1 for line in train)  # trained without the prefix
    out = tmp_path / "eval.json"
    result = CliRunner().invoke(app, ["eval", str(tmp_path / "run"), "--json", str(out)])
    assert result.exit_code == 0, result.output
    scored = json.loads(out.read_text())
    assert scored["few_shot"] is False
    assert scored["accuracy_by_bucket"] == summary.iterations[-1].accuracy_by_bucket
