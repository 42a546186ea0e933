"""GSM8K task on small files written by the tests (the real data has its own tests in test_shared_data.py)."""

from __future__ import annotations

import json

import pytest

from selftaught.config import DataConfig, config_from_dict
from selftaught.star import grade
from selftaught.tasks import Task, TaskDataError, make_task
from selftaught.tasks.gsm8k import GSM8KTask, gold_answer, validate_gsm8k

ROWS = [
    {
        "question": "Janet's ducks lay 16 eggs per day. She eats 3 and bakes with 4. She sells the rest for $2 each.",
        "answer": "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\nShe makes 9 * 2 = $<<9*2=18>>18.\n#### 18",
    },
    {
        "question": "A robe takes 2 bolts of blue fiber and half that much white fiber. How many bolts in total?",
        "answer": "It takes 2/2=<<2/2=1>>1 bolt of white fiber\nSo the total is 2+1=<<2+1=3>>3\n#### 3",
    },
    {
        "question": "Josh buys a house for $80,000 and puts in $50,000. How much profit did he make?",
        "answer": "\n".join(f"Step {k}." for k in range(9)) + "\n#### 70,000",
    },
]

FEW_SHOT = """Q: Natalia sold clips to 48 friends in April, then half as many in May. How many in all?
A: Natalia sold 48/2 = <<48/2=24>>24 clips in May.
Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.
#### 72

Q: Tina makes $18.00 an hour for 10 hours. How much money does she make?
A: She makes 18*10 = $<<18*10=180.00>>180.00
#### 180"""

FEW_SHOT_HINTED = """Q: Natalia sold clips to 48 friends in April, then half as many in May. How many in all? (72)
A: Natalia sold 48/2 = <<48/2=24>>24 clips in May.
Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.
#### 72

Q: Tina makes $18.00 an hour for 10 hours. How much money does she make? (180)
A: She makes 18*10 = $<<18*10=180.00>>180.00
#### 180"""


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return str(path)


@pytest.fixture
def files(tmp_path):
    (tmp_path / "prompts.txt").write_text(FEW_SHOT + "\n")
    (tmp_path / "prompts_answer_key.txt").write_text(FEW_SHOT_HINTED)
    return {
        "test": write_jsonl(tmp_path / "test.jsonl", ROWS),
        "few_shot": str(tmp_path / "prompts.txt"),
        "few_shot_hinted": str(tmp_path / "prompts_answer_key.txt"),
    }


def task(files, **overrides) -> GSM8KTask:
    return GSM8KTask(DataConfig(test=files["test"], train=files["test"], **overrides))


def test_load(files):
    examples = task(files).load("test")
    assert [e.id for e in examples] == ["test-0", "test-1", "test-2"]
    assert [e.answer for e in examples] == ["18", "3", "70000"]
    assert dict(examples[0].meta)["solution"] == ROWS[0]["answer"]
    assert examples[1].question == ROWS[1]["question"]
    assert [e.id for e in task(files).load("train")][:1] == ["train-0"]
    assert len(task(files, max_examples=2).load("test")) == 2


def test_id_field(tmp_path):
    rows = [dict(row, uid=f"q{k}") for k, row in enumerate(ROWS)]
    examples = GSM8KTask(DataConfig(test=write_jsonl(tmp_path / "t.jsonl", rows), id_field="uid")).load("test")
    assert [e.id for e in examples] == ["q0", "q1", "q2"]


@pytest.mark.parametrize(
    "row, message",
    [
        ({"answer": "#### 1"}, "field 'question' is missing"),
        ({"question": "  ", "answer": "#### 1"}, "field 'question' is empty"),
        ({"question": "q?"}, "field 'answer' is missing"),
        ({"question": "q?", "answer": "no final answer"}, "field 'answer' has no final '#### N'"),
        ({"question": "q?", "answer": "#### twelve"}, "field 'answer' final answer '#### twelve' is not a number"),
        ({"question": "q?", "answer": "#### 3 or 4"}, "is not a number"),
        ({"question": ["q?"], "answer": "#### 1"}, "field 'question' must be text"),
    ],
)
def test_bad_rows_name_location_and_field(tmp_path, row, message):
    path = write_jsonl(tmp_path / "bad.jsonl", [ROWS[0], row])
    with pytest.raises(TaskDataError) as err:
        GSM8KTask(DataConfig(test=path)).load("test")
    assert f"{path}:2:" in str(err.value) and message in str(err.value)


def test_split_errors(files):
    with pytest.raises(ValueError, match="splits are 'train' and 'test'"):
        task(files).load("dev")
    with pytest.raises(TaskDataError, match=r"task.data.train is not set"):
        GSM8KTask(DataConfig(test=files["test"])).load("train")


def test_zero_shot_prompt(files):
    t = task(files)
    example = t.load("test")[0]
    assert t.prompt(example) == f"Q: {example.question}\nA:"
    assert t.prompt(example, hint=True) == f"Q: {example.question} (18)\nA:"


def test_few_shot_prompt(files):
    t = task(files, few_shot=files["few_shot"])
    example = t.load("test")[0]
    assert t.prompt(example) == f"{FEW_SHOT}\n\nQ: {example.question}\nA:"
    assert t.prompt(example, hint=True) == f"{FEW_SHOT_HINTED}\n\nQ: {example.question} (18)\nA:"
    assert t.prompt(example, few_shot=False) == f"Q: {example.question}\nA:"  # stored training prompts
    assert t.prompt(example, hint=True, few_shot=False) == f"Q: {example.question} (18)\nA:"


def test_derived_hinted_prefix_equals_hinted_file(files):
    derived = task(files, few_shot=files["few_shot"])
    shipped = task(files, few_shot=files["few_shot"], few_shot_hinted=files["few_shot_hinted"])
    example = derived.load("test")[1]
    assert derived.prompt(example, hint=True) == shipped.prompt(example, hint=True)


def test_hint_derivation_needs_final_answer(tmp_path, files):
    path = tmp_path / "noanswer.txt"
    path.write_text("Q: one?\nA: 1\n\nQ: two?\nA: 2\n")
    with pytest.raises(TaskDataError, match=rf"{path}:1: few-shot answer has no final '#### N'"):
        task(files, few_shot=str(path))
    task(files, few_shot=str(path), few_shot_hinted=files["few_shot_hinted"])  # a hinted file needs no derivation


def test_bad_few_shot_file_fails_at_construction(tmp_path, files):
    path = tmp_path / "bad.txt"
    path.write_text("Q: no answer line\n")
    with pytest.raises(TaskDataError, match=rf"{path}:1: block has no 'A: ' line"):
        task(files, few_shot=str(path))


@pytest.mark.parametrize(
    "completion, correct",
    [
        (" She makes 9 * 2 = $<<9*2=18>>18.\n#### 18", True),
        (" #### 18.00", True),
        (" The answer is $18.", True),
        (" 9 * 2 = 18", True),
        (" #### 19", False),
        (" #### 18\n\nQ: next question\nA: #### 5", True),
        (" I don't know.", False),
    ],
)
def test_extract_and_check(files, completion, correct):
    t = task(files)
    example = t.load("test")[0]
    assert t.check(t.extract_answer(completion), example) is correct


def test_verify_rationale(files):
    t = task(files)
    example = t.load("test")[0]
    assert t.verify_rationale(example, ROWS[0]["answer"]) is None
    assert t.verify_rationale(example, " 9 * 2 = 18\n#### 18") is None  # no annotations: nothing to check
    wrong = " 16-3-4 = <<16-3-4=9>>9, 9*2 = <<9*2=20>>20, <<1+1=3>>\n#### 18"
    assert t.verify_rationale(example, wrong) == "<<9*2=20>>: 9*2 is 18, not 20"


def test_grade_with_star(files):
    t = task(files)
    example = t.load("test")[0]
    good = grade(t, example, " 9 * 2 = $<<9*2=18>>18.\n#### 18", hinted=False)
    assert good.correct and good.verified and good.answer == "18"
    bad_step = grade(t, example, " 9 * 2 = $<<9*2=17>>17.\n#### 18", hinted=True)
    assert bad_step.correct and not bad_step.verified and "9*2 is 18" in bad_step.problem


def test_direct_completion_bucket_budget(files):
    t = task(files, max_new_tokens=300)
    examples = t.load("test")
    assert t.direct_completion(examples[0]) == " #### 18"
    assert t.extract_answer(t.direct_completion(examples[2])) == "70000"
    assert [t.bucket(e) for e in examples] == ["2", "2", "8+"]
    assert t.max_new_tokens(examples[0]) == 300


def test_protocol_and_registry(files):
    assert isinstance(task(files), Task)
    config = config_from_dict({"task": {"name": "gsm8k", "data": {"test": files["test"]}}})
    made = make_task(config)
    assert isinstance(made, GSM8KTask) and made.name == "gsm8k"


def test_gold_answer():
    assert gold_answer("steps\n#### -1,234.50\n") == "-1234.5"
    with pytest.raises(ValueError):
        gold_answer("steps only")


def test_validate_gsm8k(tmp_path):
    bad_annotation = {"question": "q?", "answer": "2+2=<<2+2=5>>5\n#### 5"}
    rows = [*ROWS, {"question": "q?"}, bad_annotation]
    path = write_jsonl(tmp_path / "v.jsonl", rows)
    with open(path, "a") as handle:
        handle.write("{not json\n")
    report = validate_gsm8k(path)
    assert report["valid"] == 4 and report["invalid"] == 2
    assert report["problems"][0] == f"{path}:4: field 'answer' is missing"
    assert "not valid JSON" in report["problems"][1]
    assert report["gold_answer_mismatch"] == 0
    assert report["annotations"] == 5 and report["annotations_failed"] == 1
    assert report["annotation_problems"] == [f"{path}:5: <<2+2=5>>: 2+2 is 4, not 5"]


def test_validate_counts_gold_mismatch(tmp_path):
    # the gold line allows words before N; the extractor wants "#### N" and falls back to the last number
    rows = [{"question": "q?", "answer": "#### about 5\nnote: 6 was wrong"}]
    report = validate_gsm8k(write_jsonl(tmp_path / "m.jsonl", rows))
    assert report["valid"] == 1 and report["gold_answer_mismatch"] == 1
