"""``selftaught grade``: a task's grader on completions the user already has."""

from __future__ import annotations

import json

import pytest

from tests.cli.test_cli import run_cli

GSM = [
    ("Tom has 3 apples and buys 4 more. How many?", "Tom has 3+4 = <<3+4=7>>7 apples.\n#### 7"),
    ("A box holds 6 pens. How many pens in 2 boxes?", "2*6 = <<2*6=12>>12\n#### 12"),
    ("Sam had 10 cards and gave away 4. How many are left?", "10-4 = <<10-4=6>>6\n#### 6"),
]


def write(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_grade_writes_one_row_per_input_in_order(tmp_path):
    completions = [
        " Tom has 3+4 = <<3+4=7>>7 apples.\n#### 7\n\nQ: A made-up next question?\nA: #### 9",  # cut, right
        " 2*6 = <<2*6=13>>13\n#### 12",  # right answer, wrong step
        " I am not sure.",  # no answer
    ]
    rows = [{"question": q, "answer": a, "completion": c} for (q, a), c in zip(GSM, completions)]
    path = write(tmp_path / "outs.jsonl", rows)
    result = run_cli("grade", "--task", "gsm8k", "--path", str(path), "--json")
    assert result.returncode == 0, result.stderr
    counts = json.loads(result.stdout)
    assert counts == {
        "rows": 3,
        "correct": 2,
        "verified": 1,
        "no_answer": 1,
        "out": str(tmp_path / "outs.graded.jsonl"),
    }
    graded = [json.loads(line) for line in (tmp_path / "outs.graded.jsonl").read_text().splitlines()]
    assert [g["id"] for g in graded] == ["test-0", "test-1", "test-2"]
    assert [g["answer"] for g in graded] == ["7", "12", None]
    assert [g["verified"] for g in graded] == [True, False, False]
    assert graded[1]["problem"].startswith("<<2*6=13>>")


def test_grade_renamed_field_recipe_and_text_summary(tmp_path):
    rows = [{"question": q, "answer": a, "output": a} for q, a in GSM]
    path = write(tmp_path / "gold.jsonl", rows)
    out = tmp_path / "graded.jsonl"
    result = run_cli("grade", "--task", "gsm8k", "--path", str(path), "--completion-field", "output", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "3 rows, 3 correct (100.0%), 3 verified (100.0%), 0 no answer" in result.stdout
    assert len(out.read_text().splitlines()) == 3


def test_grade_raw_grades_the_whole_text(tmp_path):
    # a base model's completion ends after its first answer sentence; a chat model's (--raw) does not
    choices = [{"label": label, "text": text} for label, text in zip("ABC", ["maine", "boston", "ocean"])]
    completion = " Therefore, the answer is not boston (b). On reflection, the answer is maine (a)."
    row = {"id": "q1", "answerKey": "A", "question": {"stem": "Where?", "choices": choices}, "completion": completion}
    path = write(tmp_path / "o.jsonl", [row])
    cut = json.loads(run_cli("grade", "--task", "commonsenseqa", "--path", str(path), "--json").stdout)
    raw = json.loads(run_cli("grade", "--task", "commonsenseqa", "--path", str(path), "--raw", "--json").stdout)
    assert (cut["correct"], raw["correct"]) == (0, 1)


@pytest.mark.parametrize(
    "row, fragment",
    [
        ({"question": "q", "answer": "#### 3"}, "o.jsonl:1: field 'completion' is missing"),
        ({"question": "q", "answer": "#### 3", "completion": 3}, "o.jsonl:1: field 'completion' must be text, got int"),
        ({"question": "q", "answer": "#### 3", "completion": None}, "field 'completion' must be text, got NoneType"),
        ({"question": "q", "completion": "#### 3"}, "o.jsonl:1: field 'answer' is missing"),
        ({"question": ["q"], "answer": "#### 3", "completion": ""}, "o.jsonl:1: field 'question' must be text"),
    ],
)
def test_grade_bad_input_is_one_line_exit_2(tmp_path, row, fragment):
    path = write(tmp_path / "o.jsonl", [row])
    result = run_cli("grade", "--task", "gsm8k", "--path", str(path))
    assert result.returncode == 2, result.stdout
    assert fragment in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "o.graded.jsonl").exists()


def test_grade_other_bad_input(tmp_path):
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text('{"question": "q", "answer": "#### 3", "completion": "x"}\n{oops\n')
    for args, fragment in [
        (["--task", "gsm8k", "--path", str(bad_json)], "bad.jsonl:2: not valid JSON"),
        (["--task", "gsm8k", "--path", str(tmp_path / "missing.jsonl")], "no such file"),
        (["--task", "arithmetic", "--path", str(bad_json)], "task arithmetic has none"),
    ]:
        result = run_cli("grade", *args)
        assert result.returncode == 2 and fragment in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
