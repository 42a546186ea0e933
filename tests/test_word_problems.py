"""The embedded word-problem task (issue 11): GSM8K's format and grader on generated problems."""

import random

import pytest

from selftaught.config import ConfigError, config_from_dict
from selftaught.tasks import make_task
from selftaught.tasks.gsm8k import GSM8KTask
from selftaught.tasks.word_problems import make_problem


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
        problem = make_problem(rng, rng.randint(1, 8), 50)
        values = [int(line.rsplit(">>", 1)[1]) for line in problem.solution.split("\n")[:-1]]
        assert all(0 < v <= 999 for v in values)


@pytest.mark.parametrize(
    "settings, fragment",
    [
        ({"train_steps": []}, "task.word_problems.train_steps must be a non-empty list"),
        ({"test_steps": [0]}, "task.word_problems.test_steps must be a non-empty list"),
        ({"max_number": 1000}, "task.word_problems.max_number must be in 5..200"),
        ({"train_per_step": 0}, "task.word_problems.train_per_step must be >= 1"),
    ],
)
def test_bad_settings_name_the_key(settings, fragment):
    with pytest.raises(ConfigError, match=fragment):
        task(**settings)
