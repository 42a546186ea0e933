"""CommonsenseQA task on small files written by the tests."""

from __future__ import annotations

import copy
import json
import re

import pytest

from selftaught.config import DataConfig, config_from_dict
from selftaught.star import grade
from selftaught.tasks import Task, TaskDataError, make_task
from selftaught.tasks.choices import extract_choice
from selftaught.tasks.commonsenseqa import CommonsenseQATask, validate_commonsenseqa


def row(uid, stem, texts, key):
    choices = [{"label": label, "text": text} for label, text in zip("ABCDE", texts)]
    return {"answerKey": key, "id": uid, "question": {"question_concept": "x", "choices": choices, "stem": stem}}


ROWS = [
    row("id1", "What do people aim to do at work?", ["complete job", "learn", "kill", "wear hats", "talk"], "A"),
    row(
        "id2",
        "Where in a house would you usually find a basket of fresh fruit?",
        ["kitchen", "fruit basket", "desk", "basket", "sky"],
        "D",
    ),
    row("id3", " ".join(["word"] * 25) + "?", ["a", "b", "c"], "C"),
]

FEW_SHOT = """Q: What do people use to absorb extra ink from a fountain pen?
Answer Choices:
(a) shirt pocket
(b) calligrapher's hand
(c) inkwell
(d) desk drawer
(e) blotter
A: The answer must be used to absorb extra ink. Therefore, the answer is blotter (e).

Q: What home entertainment equipment requires cable?
Answer Choices:
(a) radio shack
(b) substation
(c) television
(d) cabinet
(e) desk
A: The answer must require cable. Therefore, the answer is television (c)."""

FEW_SHOT_HINTED = """Q: What do people use to absorb extra ink from a fountain pen?
Answer Choices:
(a) shirt pocket
(b) calligrapher's hand
(c) inkwell
(d) desk drawer
(e) blotter (CORRECT)
A: The answer must be used to absorb extra ink. Therefore, the answer is blotter (e).

Q: What home entertainment equipment requires cable?
Answer Choices:
(a) radio shack
(b) substation
(c) television (CORRECT)
(d) cabinet
(e) desk
A: The answer must require cable. Therefore, the answer is television (c)."""


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


@pytest.fixture
def files(tmp_path):
    (tmp_path / "prompts.txt").write_text(FEW_SHOT)
    (tmp_path / "prompts_answer_key.txt").write_text(FEW_SHOT_HINTED + "\n")
    return {
        "test": write_jsonl(tmp_path / "dev.jsonl", ROWS),
        "few_shot": str(tmp_path / "prompts.txt"),
        "few_shot_hinted": str(tmp_path / "prompts_answer_key.txt"),
    }


def task(files, **overrides) -> CommonsenseQATask:
    return CommonsenseQATask(DataConfig(test=files["test"], **overrides))


def test_load(files):
    examples = task(files).load("test")
    assert [e.id for e in examples] == ["id1", "id2", "id3"]
    assert [e.answer for e in examples] == ["a", "d", "c"]
    assert examples[0].question == "What do people aim to do at work?"
    assert dict(examples[1].meta)["choices"][:2] == (("a", "kitchen"), ("b", "fruit basket"))
    assert len(task(files, max_examples=1).load("test")) == 1


def test_rows_without_id_use_the_row_number(tmp_path):
    rows = [{k: v for k, v in r.items() if k != "id"} for r in ROWS]
    examples = CommonsenseQATask(DataConfig(test=write_jsonl(tmp_path / "n.jsonl", rows))).load("test")
    assert [e.id for e in examples] == ["test-0", "test-1", "test-2"]


def broken(change):
    bad = copy.deepcopy(ROWS[1])
    change(bad)
    return bad


@pytest.mark.parametrize(
    "bad, message",
    [
        (broken(lambda r: r["question"].pop("stem")), "field 'question.stem' is missing"),
        (broken(lambda r: r["question"].update(choices="A) x")), "field 'question.choices' must be a non-empty list"),
        (broken(lambda r: r["question"].update(choices=[])), "field 'question.choices' must be a non-empty list"),
        (broken(lambda r: r["question"]["choices"][2].pop("text")), "question.choices[2]: field 'text' is missing"),
        (broken(lambda r: r["question"]["choices"][0].pop("label")), "question.choices[0]: field 'label' is missing"),
        (broken(lambda r: r["question"]["choices"].append("x")), "field 'question.choices[5]' must be an object"),
        (broken(lambda r: r["question"]["choices"][1].update(label="AB")), "must be one letter"),
        (broken(lambda r: r["question"]["choices"][1].update(label="A")), "repeats label 'a'"),
        (broken(lambda r: r.update(answerKey="F")), "field 'answerKey' 'f' is not one of the labels (a, b, c, d, e)"),
        (broken(lambda r: r.pop("answerKey")), "field 'answerKey' is missing"),
        (broken(lambda r: r.update(id="id1")), "duplicate id 'id1'"),
    ],
)
def test_bad_rows_name_location_and_field(tmp_path, bad, message):
    path = write_jsonl(tmp_path / "bad.jsonl", [ROWS[0], bad])
    with pytest.raises(TaskDataError) as err:
        CommonsenseQATask(DataConfig(test=path)).load("test")
    assert f"{path}:2:" in str(err.value) and message in str(err.value)


def test_prompts(files):
    t = task(files, few_shot=files["few_shot"])
    example = t.load("test")[1]
    question = (
        "Q: Where in a house would you usually find a basket of fresh fruit?\nAnswer Choices:\n"
        "(a) kitchen\n(b) fruit basket\n(c) desk\n(d) basket\n(e) sky\nA:"
    )
    assert t.prompt(example) == f"{FEW_SHOT}\n\n{question}"
    hinted = question.replace("(d) basket", "(d) basket (CORRECT)")
    assert t.prompt(example, hint=True) == f"{FEW_SHOT_HINTED}\n\n{hinted}"
    assert task(files).prompt(example) == question  # zero-shot
    assert t.prompt(example, few_shot=False) == question
    assert t.prompt(example, hint=True, few_shot=False) == hinted


def test_derived_hinted_prefix_equals_hinted_file(files):
    derived = task(files, few_shot=files["few_shot"])
    shipped = task(files, few_shot=files["few_shot"], few_shot_hinted=files["few_shot_hinted"])
    example = derived.load("test")[0]
    assert derived.prompt(example, hint=True) == shipped.prompt(example, hint=True)


@pytest.mark.parametrize(
    "text, message",
    [
        ("Q: q?\nAnswer Choices:\n(a) x\n(b) y\nA: no label at the end", "has no final '(x)'"),
        ("Q: q?\nAnswer Choices:\n(a) x\n(b) y\nA: the answer is z (c).", "no choice line '(c) ...'"),
    ],
)
def test_hint_derivation_errors(tmp_path, files, text, message):
    path = tmp_path / "p.txt"
    path.write_text(text)
    with pytest.raises(TaskDataError, match=re.escape(f"{path}:1: ") + ".*" + re.escape(message)):
        task(files, few_shot=str(path))


@pytest.mark.parametrize(
    "completion, correct",
    [
        (" Baskets hold fruit. Therefore, the answer is basket (d).", True),
        (" Therefore, the answer is basket.", True),  # named by its text, resolved by check
        (" Therefore, the answer is fruit basket.", False),
        (" the answer is (D)", True),
        (" the answer is d.", True),
        (" I pick (a), no wait, (d)", False),  # two labels and no statement: no answer
        (" Therefore, the answer is kitchen (a).\n\nQ: next\nA: the answer is basket (d).", False),
        (" Therefore, the answer is the moon.", False),
        (" no idea", False),
        ("", False),
    ],
)
def test_extract_and_check(files, completion, correct):
    t = task(files)
    example = t.load("test")[1]
    assert t.check(t.extract_answer(completion, example), example) is correct
    # the protocol's two steps agree with extract_choice given the example's choices
    choices = list(dict(example.meta)["choices"])
    assert (extract_choice(completion, choices) == example.answer) is correct


def test_extract_answer_returns_a_label(files):
    t = task(files)
    example = t.load("test")[1]  # choices include "basket" (d)
    assert t.extract_answer("so the answer is blotter (e).") == "e"
    assert t.extract_answer("so the answer is basket.") is None  # without the example: letters only
    assert t.extract_answer("so the answer is basket.", example) == "d"
    assert t.extract_answer("(b) then (c)") is None
    assert t.extract_answer("nothing", example) is None


def test_grade_with_star(files):
    t = task(files)
    example = t.load("test")[0]
    row_ = grade(t, example, " Work is for jobs. Therefore, the answer is complete job (a).", hinted=False)
    assert row_.correct and row_.verified and row_.answer == "a"


def test_direct_completion_bucket_budget_protocol(files):
    t = task(files, max_new_tokens=99)
    examples = t.load("test")
    assert t.direct_completion(examples[1]) == " The answer is basket (d)."
    assert t.check(t.extract_answer(t.direct_completion(examples[1]), examples[1]), examples[1])
    assert [t.bucket(e) for e in examples] == ["short", "medium", "long"]
    assert t.verify_rationale(examples[0], "anything") is None
    assert t.max_new_tokens(examples[0]) == 99
    assert isinstance(t, Task)
    made = make_task(config_from_dict({"task": {"name": "commonsenseqa", "data": {"test": files["test"]}}}))
    assert isinstance(made, CommonsenseQATask) and made.name == "commonsenseqa"


def test_validate_commonsenseqa(tmp_path):
    rows = [*ROWS, broken(lambda r: r.update(answerKey="Z")), broken(lambda r: r.update(id="id1"))]
    path = write_jsonl(tmp_path / "v.jsonl", rows)
    report = validate_commonsenseqa(path)
    assert report["valid"] == 3 and report["invalid"] == 2
    assert report["problems"][0].startswith(f"{path}:4: field 'answerKey'")
    assert "duplicate id" in report["problems"][1]
    assert report["rows_by_choices"] == {"3": 1, "5": 2}
