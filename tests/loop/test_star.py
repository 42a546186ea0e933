from selftaught import star
from selftaught.tasks.arithmetic import ArithmeticTask, compact_completion
from selftaught.tasks.base import Example

TASK = ArithmeticTask([1, 2], [1, 2], 5, 5)
EXAMPLES = [Example("q1", "12+34", "46"), Example("q2", "5+7", "12"), Example("q3", "19+1", "20")]
GOOD = {ex.id: compact_completion(*ex.question.split("+")) for ex in EXAMPLES}
WRONG_STEPS_RIGHT_ANSWER = "20010,43070|64"  # q1 with misread operands, answer copied


def rows():
    return [
        star.grade(TASK, EXAMPLES[0], WRONG_STEPS_RIGHT_ANSWER, hinted=False),
        star.grade(TASK, EXAMPLES[1], GOOD["q2"], hinted=False),
        star.grade(TASK, EXAMPLES[2], "91001|02x", hinted=False),  # unparseable answer
    ]


def test_grade_fields():
    row = rows()[0]
    assert row.correct and not row.verified and row.problem
    fields = {"id", "hinted", "sample", "text", "answer", "correct", "verified", "problem", "truncated"}
    assert set(row.to_json()) == fields and row.truncated is False  # a plain str was not cut by a budget
    assert rows()[2].answer is None and not rows()[2].correct


def test_filter_modes():
    r = rows()
    assert [star.is_kept(x, "answer") for x in r] == [True, True, False]
    assert [star.is_kept(x, "answer+rationale") for x in r] == [False, True, False]


def test_needs_rationalization_depends_on_filter():
    r = rows()
    assert [e.id for e in star.needs_rationalization(EXAMPLES, r, "answer")] == ["q3"]
    assert [e.id for e in star.needs_rationalization(EXAMPLES, r, "answer+rationale")] == ["q1", "q3"]


def test_rationalized_samples_are_stored_without_the_hint():
    r = rows() + [
        star.grade(TASK, EXAMPLES[2], GOOD["q3"], hinted=True),
        star.grade(TASK, EXAMPLES[2], GOOD["q3"], hinted=True, sample=1),  # duplicate text
        star.grade(TASK, EXAMPLES[1], GOOD["q2"], hinted=True),  # q2 already solved without hint
    ]
    records = star.training_records(TASK, EXAMPLES, r, "answer+rationale")
    assert [(x.id, x.source) for x in records] == [("q2", "generated"), ("q3", "rationalized")]
    for record in records:
        example = next(e for e in EXAMPLES if e.id == record.id)
        assert record.prompt == TASK.prompt(example, hint=False)
        assert TASK.prompt(example, hint=True) not in record.prompt + record.completion
        assert "(" not in record.prompt


def test_direct_records_have_no_rationale():
    records = star.direct_records(TASK, EXAMPLES)
    assert records[0].completion == "|64" and records[0].prompt == "21+43="
    assert all("," not in r.completion for r in records)


def test_accuracy_by_bucket():
    overall, by_bucket = star.accuracy_by_bucket(TASK, EXAMPLES, rows())
    assert overall == 2 / 3
    assert by_bucket == {"1": 1.0, "2": 0.5}
