"""Answer extraction and checking: tricky outputs, adversarial sizes, and property tests."""

from __future__ import annotations

import random
import sys
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selftaught.tasks.answers import (
    EvalError,
    StepCheck,
    check_annotation,
    check_annotations,
    extract_gsm8k_answer,
    normalize_number,
    numbers_equal,
    safe_eval,
)
from selftaught.tasks.choices import extract_choice

# A hang guard, not a speed target (those live in benchmarks/): a linear scan of these 1 MB inputs takes
# well under a second, catastrophic backtracking takes minutes or more; 10 s does not flake under load.
FAST = 10.0


def timed(function, *args):
    start = time.perf_counter()
    result = function(*args)
    elapsed = time.perf_counter() - start
    assert elapsed < FAST, f"{function.__name__} took {elapsed:.2f}s"
    return result


def garbage(size: int = 1 << 20, seed: int = 0) -> str:
    rng = random.Random(seed)
    return "".join(rng.choice("0123456789 ,.$-#<>=()*/abcxyz\n") for _ in range(size))


# ------------------------------------------------------------------------------ normalize_number
@pytest.mark.parametrize(
    "text, expected",
    [
        ("18", "18"),
        ("18.0", "18"),
        ("18.", "18"),
        ("$18.00", "18"),
        ("1,234", "1234"),
        ("$1,234,567.80 dollars", "1234567.8"),
        ("-3.5", "-3.5"),
        ("-$3", "-3"),
        (".5", "0.5"),
        ("007", "7"),
        ("-0.0", "0"),
        ("about 12 cm", "12"),
        ("50%", "50"),
        ("3 and 4", None),
        ("1/2", None),
        ("", None),
        ("twelve", None),
    ],
)
def test_normalize_number(text, expected):
    assert normalize_number(text) == expected


@given(st.integers(min_value=-(10**30), max_value=10**30))
@settings(max_examples=200, deadline=None)
def test_normalize_number_round_trips_formatted_integers(n):
    sign = "-" if n < 0 else ""
    for text in (str(n), f"{n:,}", f"{sign}${abs(n):,}", f"{n}.00", f"{sign}{abs(n):,} dollars."):
        assert normalize_number(text) == str(n)


# --------------------------------------------------------------------------- extract_gsm8k_answer
@pytest.mark.parametrize(
    "text, expected",
    [
        ("9 * 2 = <<9*2=18>>18\n#### 18", "18"),
        ("#### -3", "-3"),
        ("#### 3.50", "3.5"),
        ("#### 1,234", "1234"),
        ("#### $5", "5"),
        ("####18.0", "18"),
        ("#### 7\nmore\n#### 8", "7"),  # the first final answer counts, not a hallucinated next one
        ("So the answer is 42 apples.", "42"),
        ("THE ANSWER IS: $1,000.", "1000"),
        ("5 apples; the answer is 6, not 7", "6"),
        ("He paid $12.50 for 3 books", "3"),
        ("It was -4 degrees", "-4"),
        ("20-5=15", "15"),
        ("The total is $1,234.50.", "1234.5"),
        ("#### \n the answer is 9", "9"),  # an empty #### does not hide a later answer
        ("no numbers here", None),
        ("", None),
        ("####", None),
    ],
)
def test_extract_gsm8k_answer(text, expected):
    assert timed(extract_gsm8k_answer, text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1" * 100_000, "1" * 100_000),
        ("#### " + "9" * 100_000, "9" * 100_000),
        ("####" * 250_000, None),
        ("####" * 250_000 + " 5", "5"),
        ("the answer is " * 70_000, None),
        ("1," * 500_000, None),  # a loop states no answer
        ("-1" * 500_000, None),
        ("." * 1_000_000, None),
        (" " * 1_000_000 + "3", "3"),
    ],
    ids=["digits", "hash-digits", "hashes", "hashes-then-5", "answer-is", "commas", "minus", "dots", "spaces"],
)
def test_extract_gsm8k_answer_is_fast_on_adversarial_input(text, expected):
    assert timed(extract_gsm8k_answer, text) == expected


def test_extractors_are_fast_on_a_megabyte_of_garbage():
    text = garbage()
    timed(extract_gsm8k_answer, text)
    timed(normalize_number, text)
    timed(check_annotations, text)
    timed(extract_choice, text, [("a", "x"), ("b", "y")])


# ---------------------------------------------------------------------------------- numbers_equal
@pytest.mark.parametrize(
    "a, b, expected",
    [
        ("18", "18.0", True),
        ("1,000", "1000", True),
        ("-3.5", "-3.50", True),
        ("0.3333333", "1/3", True),
        ("1/2", "0.5", True),
        ("1000000", "1000001", False),
        ("3", "4", False),
        ("3", None, False),
        (None, None, False),
        ("abc", "abc", False),
        ("x", "x", False),
        ("1/0", "1", False),
    ],
)
def test_numbers_equal(a, b, expected):
    assert numbers_equal(a, b) is expected


def test_numbers_equal_without_math_verify(monkeypatch):
    monkeypatch.setitem(sys.modules, "math_verify", None)  # makes `import math_verify` fail
    assert numbers_equal("1/2", "0.5")
    assert not numbers_equal("\\frac{1}{2}", "0.5")


def test_numbers_equal_uses_math_verify_for_latex():
    pytest.importorskip("math_verify")
    assert numbers_equal("\\frac{1}{2}", "0.5")
    assert not numbers_equal("\\frac{1}{3}", "0.5")
    assert not numbers_equal("9^{9^{9}}", "1")  # powers are never sent to sympy


# -------------------------------------------------------------------------------------- safe_eval
@pytest.mark.parametrize(
    "expr, expected",
    [
        ("16-3-4", 9),
        ("80,000+50,000", 130000),
        ("18*.5", 9),
        ("+30+46+38+11+18", 143),
        ("-(2+3)*2", -10),
        ("7//2", 3),
        ("7%3", 1),
        ("2**10", 1024),
        ("05*2", 10),
        ("25/100*28", 7),
    ],
)
def test_safe_eval(expr, expected):
    assert safe_eval(expr) == pytest.approx(expected)


@pytest.mark.parametrize(
    "expr",
    [
        "__import__('os')",
        "__import__('os').system('true')",
        "x",
        "abs(-1)",
        "(1).real",
        "[1, 2]",
        "1 if 1 else 2",
        "lambda: 1",
        "'a' * 3",
        "1, 2",
        "True + 1",
        "9**9**9",
        "10**400",
        "(-8) ** 0.5",
        "1/0",
        "5%",
        "",
        "1" * 2000,
        "1+" * 500_000 + "1",
        "(" * 400 + "1" + ")" * 400,
        "-" * 900 + "1",
        "-" * 150 + "1",
    ],
)
def test_safe_eval_rejects_quickly(expr):
    with pytest.raises(EvalError):
        timed(safe_eval, expr)


# ------------------------------------------------------------------------------ check_annotations
@pytest.mark.parametrize(
    "body, verdict",
    [
        ("48/2=24", True),
        ("8*18=144.00", True),
        ("18*.5=9.00", True),
        ("6*.1=.6", True),
        ("0.8-0.5=0.3", True),  # float rounding is within tolerance
        ("80,000*1.5=120,000", True),
        ("10/3=3.33", True),  # rounded to the decimals shown
        ("2/4=1/2", True),
        ("10/3=3.3333", True),
        ("10/3=3.34", False),
        ("2+2=5", False),
        ("1/0=5", False),  # plain arithmetic that divides by zero is a wrong step
        # cannot be evaluated: unchecked, neither right nor wrong
        ("500/month*12=6000", None),  # units inside
        ("x=5", None),
        ("2+2", None),
        ("2+2=four", None),
        ("5*2=10 dollars", None),
        ("=4", None),
        ("9**9**9=1", None),  # too large to compute within bounds
        ("20% of 50=10", None),
    ],
)
def test_check_annotation(body, verdict):
    right, message = check_annotation(body)
    assert right is verdict
    assert (message == "") is (verdict is True)


def test_check_annotations_counts_and_reports():
    text = "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 eggs.\nShe makes 9 * 2 = $<<9*2=19>>19.\n#### 19"
    assert check_annotations(text) == StepCheck(2, 0, ("<<9*2=19>>: 9*2 is 18, not 19",))
    assert check_annotations("no annotations") == StepCheck(0, 0, ())
    assert check_annotations("<<<<2+2=4>>") == StepCheck(1, 0, ())  # the innermost "<<"
    assert check_annotations("<<2+2=4") == StepCheck(0, 0, ())  # never closed
    assert check_annotations("<<1+1=2>> and <<3*3=9>>") == StepCheck(2, 0, ())
    assert check_annotations("<<500/month*12=6000>> and <<3*3=9>>") == StepCheck(1, 1, ())


@pytest.mark.parametrize(
    "text",
    ["<<" * 500_000, "<<1" * 300_000 + ">>", "<<1+1=2>>" * 100_000, ">>" * 500_000, "<<" + "1+" * 500_000 + "=1>>"],
    ids=["opens", "one-close", "many", "closes", "huge-body"],
)
def test_check_annotations_is_fast(text):
    steps = timed(check_annotations, text)
    assert len(steps.problems) <= steps.checked + 1


def test_check_annotations_bounds_the_work():
    steps = check_annotations("<<1+1=2>>" * 1500)
    assert (steps.checked, steps.unchecked) == (1000, 500)
    assert steps.problems == ("500 annotations past the first 1,000 were not checked",)


# -------------------------------------------------------------------------------- extract_choice
CHOICES = [("a", "shirt pocket"), ("b", "basket"), ("c", "desk"), ("d", "desk drawer"), ("e", "blotter")]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Therefore, the answer is basket (b).", "b"),
        ("The answer is (E)", "e"),
        ("So the answer is blotter.", "e"),
        ("the answer is Desk Drawer.", "d"),  # the longest choice named at the same place
        ("the answer is desk.", "c"),
        ("the answer is b.", "b"),
        ("(a) looks wrong but (c) fits", None),  # two labels and no statement: no answer
        ("the answer is (z), or (a)", "a"),  # (z) is no label: falls back to the last valid one
        ("the answer is a deskdrawer", None),  # whole words only
        ("I do not know", None),
        ("", None),
        ("Therefore, the answer is blotter (e).\n\nQ: next\nA: the answer is basket (b).", "e"),
    ],
)
def test_extract_choice(text, expected):
    assert timed(extract_choice, text, CHOICES) == expected


# ------------------------------------------------------------------------------- property tests
@given(st.text(max_size=400))
@settings(max_examples=300, deadline=None)
def test_extractors_never_raise(text):
    answer = extract_gsm8k_answer(text)
    assert answer is None or numbers_equal(answer, answer)
    normalize_number(text)
    steps = check_annotations(text)
    assert 0 <= len(steps.problems) <= steps.checked
    assert extract_choice(text, CHOICES) in {None, "a", "b", "c", "d", "e"}


@given(st.text(alphabet="0123456789+-*/%(). ,=<>#$", max_size=200))
@settings(max_examples=300, deadline=None)
def test_arithmetic_looking_text_never_raises(text):
    extract_gsm8k_answer(text)
    check_annotations(f"<<{text}>>")
    try:
        safe_eval(text)
    except EvalError:
        pass
