import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selftaught.tasks.arithmetic import (
    ArithmeticTask,
    Step,
    check_steps,
    column_steps,
    compact_answer,
    compact_completion,
    compact_steps,
    scratchpad_completion,
)
from selftaught.tasks.base import Example

numbers = st.integers(min_value=0, max_value=10**12).map(str)


def task(fmt="compact"):
    return ArithmeticTask([1, 2, 3, 4], [1, 2, 3, 4], 50, 20, format=fmt, seed=3)


@pytest.mark.parametrize("fmt", ["compact", "scratchpad"])
@given(a=numbers, b=numbers)
@settings(max_examples=60, deadline=None)
def test_gold_completion_round_trips(fmt, a, b):
    t = task(fmt)
    ex = Example("x", f"{a}+{b}", str(int(a) + int(b)))
    text = t.gold_completion(ex)
    assert t.extract_answer(text) == ex.answer
    assert t.check(t.extract_answer(text), ex)
    assert t.verify_rationale(ex, text) is None


def test_compact_format_example():
    assert compact_completion("123", "4567") == "37001,26190,15060,04040|0964"
    t = task()
    ex = Example("x", "123+4567", "4690")
    assert t.prompt(ex) == "321+7654="
    assert t.prompt(ex, hint=True) == "321+7654(0964)="


def test_paper_scratchpad_example():
    text = scratchpad_completion("624", "257")
    assert text.splitlines() == [
        "<scratch>",
        "6 2 4 + 2 5 7 , C: 0",
        "6 2 + 2 5 , 1 C: 1",
        "6 + 2 , 8 1 C: 0",
        ", 8 8 1 C: 0",
        "0 8 8 1",
        "</scratch>",
        "8 8 1",
    ]


def _break(steps, k, **change):
    steps = list(steps)
    steps[k] = dataclasses.replace(steps[k], **change)
    return steps


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda s: _break(s, 1, a=(s[1].a + 1) % 10), "instead of operand digits"),
        (lambda s: _break(s, 2, b=(s[2].b + 3) % 10), "instead of operand digits"),
        (lambda s: _break(s, 1, carry_in=1 - s[1].carry_in), "carry in"),
        (lambda s: _break(s, 0, digit=(s[0].digit + 1) % 10), "does not give digit"),
        (lambda s: _break(s, 0, carry_out=1 - s[0].carry_out), "does not give carry"),
        (lambda s: s[:-1], "steps for"),
        (lambda s: s + [Step(0, 0, 0, 0, 0)], "steps for"),
    ],
)
def test_verifier_rejects_each_kind_of_wrong_step(mutate, expected):
    a, b = "958", "467"  # carries in every column
    good = column_steps(a, b)
    assert check_steps(a, b, good, str(int(a) + int(b))) is None
    problem = check_steps(a, b, mutate(good), str(int(a) + int(b)))
    assert problem is not None and expected in problem


def test_verifier_rejects_answer_not_from_steps():
    a, b = "958", "467"
    assert "not what the steps computed" in check_steps(a, b, column_steps(a, b), "1424")


def test_verifier_catches_copied_hint_with_misread_operand():
    # the failure mode seen in the prototype: right answer (copied from the hint), wrong reading
    t = task()
    ex = Example("x", "23+45", "68")
    bad = "36090,24060|86"  # reads b1 as 6 (it is 5) yet writes the hinted answer
    assert t.check(t.extract_answer(bad), ex)
    assert "operand digits" in t.verify_rationale(ex, bad)


@pytest.mark.parametrize("text", ["", "|", "abc", "3700|", "|12a", "1,2,3|45", "0" * 100000, "|" * 5000, "é|12"])
def test_malformed_compact_text_never_crashes(text):
    t = task()
    ex = Example("x", "12+34", "46")
    t.extract_answer(text)
    assert t.verify_rationale(ex, text) is not None or t.extract_answer(text) == "46"


@given(st.text(max_size=300))
@settings(max_examples=200, deadline=None)
def test_extractors_total_on_any_text(text):
    for fmt in ("compact", "scratchpad"):
        t = task(fmt)
        ex = Example("x", "12+34", "46")
        answer = t.extract_answer(text)
        assert answer is None or answer.isdigit()
        t.verify_rationale(ex, text)


def test_compact_steps_parse():
    steps, answer = compact_steps("37001,26190|0964")
    assert steps[1] == Step(2, 6, 1, 9, 0) and answer == "4690"
    assert compact_answer("x|007") == "700"


def test_splits_disjoint_and_seeded():
    t1, t2 = task(), task()
    train, test = t1.load("train"), t1.load("test")
    assert not {e.question for e in train} & {e.question for e in test}
    assert [e.question for e in train] == [e.question for e in t2.load("train")]
    assert {t1.bucket(e) for e in test} == {"1", "2", "3", "4"}
    assert len({e.id for e in train}) == len(train)
    other = ArithmeticTask([1, 2, 3, 4], [1, 2, 3, 4], 50, 20, seed=4).load("train")
    assert [e.question for e in other] != [e.question for e in train]
    with pytest.raises(ValueError):
        t1.load("validation")
