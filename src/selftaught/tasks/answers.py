"""Answer extraction and checking for GSM8K-style numbers and multiple choice, as plain functions.

Every function takes untrusted model output, so each one is linear-time (regexes without nested
quantifiers, bounded windows) and never raises on odd text. `safe_eval` walks an `ast` tree of
numbers and arithmetic operators only; it never calls Python's ``eval``.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation, localcontext

from selftaught.tasks.loops import is_list_number, repeated

# A number token: optional sign (only when not a binary minus, i.e. not after a word or ")"),
# optional "$", then digits with optional thousands groups and decimals, or a bare ".5".
# No quantifier is nested inside another, so matching is linear in the text length.
NUMBER = r"(?:(?<![\w)\]])-)?\$?(?:\d+(?:,\d{3})*(?:\.\d+)?|(?<!\d)\.\d+)"
_NUMBER_RE = re.compile(NUMBER, re.ASCII)
# An answer as a model states it: a number, a simple fraction "1/4", or a percentage "25%".
ANSWER_TOKEN = "(" + NUMBER + r")(?:/(\d{1,20})(?![\d.]))?(%)?"
_TOKEN_RE = re.compile(ANSWER_TOKEN, re.ASCII)
_HASH_RE = re.compile(r"####[ \t]*" + ANSWER_TOKEN, re.ASCII)
BOXED_RE = re.compile(r"\\boxed\{((?:[^{}\n]|\{[^{}\n]{0,20}\}){0,80})\}")  # one level of braces inside
_FRAC_RE = re.compile(r"\\d?frac\{([^{}]{1,20})\}\{([^{}]{1,20})\}")
# "the answer is", "Final answer:", "answer (as a fraction) is", "the answer would be", "Answer ="
_STATEMENT_RE = re.compile(
    r"\banswer\b(?:[ \t]*\([^()\n]{0,40}\))?[ \t]*(?:is|was|would be|will be|should be|:|=)", re.IGNORECASE
)
_SENTENCE_END_RE = re.compile(r"\.(?=\s|$)|\n")
_HEDGE_RE = re.compile(r"\s*(?:or|to)\s+\$?-?\.?\d", re.IGNORECASE)
_THOUSANDS_RE = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_LEADING_ZEROS_RE = re.compile(r"(?<![\d.])0+(?=\d)")
_LITERAL_RE = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:/\d+)?", re.ASCII)

MAX_EXPR_CHARS = 1000  # longer expressions are refused before parsing
MAX_EXPONENT = 1000  # |b| in a**b; 9**9**9 is refused instead of computed
MAX_DEPTH = 100  # nesting of operators and parentheses; deeper is refused, not left to the stack
MAX_ANNOTATION_CHARS = 1000
MAX_ANNOTATIONS = 1000  # a completion with more is reported, not checked one by one
NEXT_QUESTION = "\nQ:"
TAIL_CHARS = 10_000  # a completion's answer is near its end; longer text is only scanned for "####" and numbers
MAX_STATEMENTS = 20  # answer statements looked at, from the last one back
ANSWER_WINDOW = 200  # characters after an answer statement that can hold the answer
MATH_VERIFY_MAX_CHARS = 64  # sympy on long or exotic input can be slow; such input is not sent


class EvalError(ValueError):
    """An expression `safe_eval` refuses or cannot compute."""


class ZeroDivision(EvalError):
    """Plain arithmetic that divides by zero: a wrong step, not an expression that cannot be read."""


# --------------------------------------------------------------------------------------- numbers
def _canonical(token: str) -> str:
    """'$1,234.50' -> '1234.5'; '-0.0' -> '0'. String operations only, so 100k digits are cheap."""
    negative = token.startswith("-")
    digits = token.lstrip("-").replace("$", "").replace(",", "")
    whole, _, frac = digits.partition(".")
    whole, frac = whole.lstrip("0") or "0", frac.rstrip("0")
    text = f"{whole}.{frac}" if frac else whole
    return f"-{text}" if negative and text != "0" else text


def normalize_number(text: str) -> str | None:
    """The one number in ``text`` in canonical form, or None when there is none or more than one.

    >>> normalize_number("$1,234.50")
    '1234.5'
    >>> normalize_number("18.0 dollars.")
    '18'
    >>> normalize_number("-3.50")
    '-3.5'
    >>> normalize_number(".5")
    '0.5'
    >>> normalize_number("3 apples and 4 pears") is None
    True
    >>> normalize_number("none") is None
    True
    """
    found = None
    for match in _NUMBER_RE.finditer(text):
        if found is not None:
            return None
        found = match.group()
    return _canonical(found) if found is not None else None


def _token(match: re.Match) -> str:
    """A matched `ANSWER_TOKEN` in canonical form: '1,000' -> '1000', '1/4', '25%'."""
    number, denominator, percent = match.group(1), match.group(2), match.group(3)
    text = _canonical(number) + (f"/{denominator}" if denominator else "")
    return text + ("%" if percent and not denominator else "")


def _statement_window(text: str, at: int) -> str:
    """What an answer statement says: the rest of its sentence, or the next line when its line is empty
    ("The answer is:" then the number on its own line)."""
    window = text[at : at + ANSWER_WINDOW]
    head, newline, rest = window.partition("\n")
    if not head.strip() and newline:
        window = rest.lstrip("\n")
    end = _SENTENCE_END_RE.search(window)
    return window[: end.start()] if end else window


def question_numbers(question: str | None) -> frozenset[str]:
    """The numbers a question states, in canonical form ("$1,200" -> "1200"); bounded like the rest."""
    if not question:
        return frozenset()
    return frozenset(_canonical(n) for n in _NUMBER_RE.findall(question[:TAIL_CHARS]))


def _not_restated(matches: list[re.Match], given: frozenset[str]) -> list[re.Match]:
    """The matches that are not numbers restated from the question ("After 60 days, she will spend $16"
    restates the 60 days it was asked about); all of them when every one is, or the question is unknown."""
    fresh = [m for m in matches if _canonical(m.group(1)) not in given]
    return fresh or matches


def _stated_answer(window: str, given: frozenset[str] = frozenset()) -> str | None:
    """The number a statement names: after its last "=" when it shows a computation ("2 + 3 = 5"),
    else its first that is not restated from the question; None when it hedges between two ("12 or 13")."""
    window = window[window.rfind("=") + 1 :]
    matches = _not_restated(list(_TOKEN_RE.finditer(window)), given)
    if not matches:
        return None
    match = matches[0]
    if _HEDGE_RE.match(window, match.end()):
        return None
    return _token(match)


def _cut_copy(text: str, match: re.Match) -> bool:
    """Whether a "#### N" is a cut copy of the result stated just before it: "... = 125\n#### 12" (the
    budget ran out mid-number) or "3600 downloads.\n#### 3": N's digits begin the last number of the
    sentence right before the "####" without being all of it, so neither is the model's one answer. (A
    result stated earlier is another quantity: "... = 32 feet. So it took three days.\n#### 3".)"""
    before = text[max(0, match.start() - ANSWER_WINDOW) : match.start()].rstrip().rstrip(".")
    ends = list(_SENTENCE_END_RE.finditer(before))
    stated = _NUMBER_RE.findall(before, ends[-1].end() if ends else 0)
    if not stated:
        return False
    result, answer = _canonical(stated[-1]), _token(match)
    return result != answer and result.startswith(answer)


def _last_sentence_answer(text: str, given: frozenset[str]) -> str | None:
    """With no "####", box or answer statement: the last number of the last sentence holding one (after its
    last "=") that is not restated from the question ("Ryan has 25 flowers after 15 days", 15 days given);
    None when that number and the text before it were written before, word for word: a base model looping
    until its budget ran out ("She has 110 - 30 = 70 coins." again and again, or under a new list number each
    time) states no answer; None too when that number is a list number ("3. Add them up.")."""
    numbers = _NUMBER_RE.findall(text)  # faster than finditer when a long text holds many numbers
    if not numbers:
        return None
    last_at = text.rfind(numbers[-1])
    last_end = last_at + len(numbers[-1])
    if is_list_number(text, last_at, last_end) or repeated(text, last_at, last_end):
        return None  # a model repeating itself ran out of tokens in a loop: it never gave an answer
    starts = [m.end() for m in _SENTENCE_END_RE.finditer(text, max(0, last_at - ANSWER_WINDOW), last_at)]
    start = starts[-1] if starts else max(0, last_at - ANSWER_WINDOW)
    start = max(start, text.rfind("=", start, last_at) + 1)  # "3 + 2 = 5": the result, as in a statement
    matches = _not_restated(list(_TOKEN_RE.finditer(text, start, last_at + len(numbers[-1]) + 24)), given)
    if matches:
        return _token(matches[-1])  # with its "/4" or "%", if any
    return _canonical(numbers[-1])


def extract_gsm8k_answer(text: str, question: str | None = None) -> str | None:
    """The model's final number, in canonical form; fractions ("1/4") and percentages ("25%") kept.

    In order: the first ``#### N`` (the few-shot format; a later one is a made-up next question), unless
    N is cut short from the number stated just before it ("= 125" then "#### 12": no answer);
    the last ``\\boxed{N}``; the last answer statement ("the answer is", "Answer:", "Final answer:",
    "the answer (as a fraction) is") that names a number, reading the rest of its sentence, where a
    hedge between two numbers is no answer; else the last number of the last sentence. Given the
    ``question``, a statement or last sentence holding several numbers names the one that is not restated
    from the question ("After 60 days, Cynthia will spend $16" asked about 60 days answers 16).

    >>> extract_gsm8k_answer("9 * 2 = <<9*2=18>>18\\n#### 18")
    '18'
    >>> extract_gsm8k_answer("So the answer is $1,000.")
    '1000'
    >>> extract_gsm8k_answer("Answer: Kylar needs to pay $64 for 16 glasses.")
    '64'
    >>> extract_gsm8k_answer("That is 25%. The answer (as a fraction) is 1/4.")
    '1/4'
    >>> extract_gsm8k_answer("The answer is 12 or 13.") is None
    True
    >>> extract_gsm8k_answer("She has 3 apples, then 5.")
    '5'
    >>> extract_gsm8k_answer("Answer: After 60 days, she will spend $16.00", "What will she spend in 60 days?")
    '16'
    >>> extract_gsm8k_answer("no idea") is None
    True
    """
    given = question_numbers(question)
    text = text.split(NEXT_QUESTION, 1)[0]  # a made-up next question never decides the answer
    match = _HASH_RE.search(text)
    if match:
        return None if _cut_copy(text, match) else _token(match)
    tail = text[-TAIL_CHARS:]  # statements and boxed answers are looked for near the end: bounded work
    boxed = None
    for boxed in BOXED_RE.finditer(tail):  # noqa: B007 - the last one counts
        pass
    if boxed is not None:
        inner = _FRAC_RE.sub(r"\1/\2", boxed.group(1))
        found = _TOKEN_RE.search(inner)
        if found:
            return _token(found)
    plain = tail.replace("**", "")  # markdown bold: "**Answer:** 64"
    statements = list(_STATEMENT_RE.finditer(plain))[-MAX_STATEMENTS:]
    for statement in reversed(statements):
        window = _statement_window(plain, statement.end())
        if _TOKEN_RE.search(window):
            return _stated_answer(window, given)
    return _last_sentence_answer(text, given)


def to_decimal(text: str) -> Decimal | None:
    """A number, or a simple fraction ``a/b``, as a Decimal; None for anything else."""
    text = text.strip()
    if len(text) > MAX_EXPR_CHARS:
        return None
    head, slash, tail = text.partition("/")
    try:
        if slash:
            top, bottom = normalize_number(head), normalize_number(tail)
            if top is None or bottom is None or "/" in tail or Decimal(bottom) == 0:
                return None
            with localcontext() as ctx:
                ctx.prec = 50
                return Decimal(top) / Decimal(bottom)
        value = normalize_number(text)
        return Decimal(value) if value is not None else None
    except InvalidOperation:
        return None


def _close(x: Decimal, y: Decimal, rel_tol: float, abs_tol: float) -> bool:
    with localcontext() as ctx:
        ctx.prec = 50
        diff = abs(x - y)
        return diff <= Decimal(abs_tol) or diff <= Decimal(rel_tol) * max(abs(x), abs(y))


def _math_verify_equal(a: str, b: str) -> bool:
    """math-verify's symbolic comparison (LaTeX such as ``\\frac{1}{2}``), only if it is installed.

    Inputs are short and free of powers and factorials, which keeps sympy fast; math-verify's own
    timeouts use SIGALRM, which fails outside the main thread, so they are turned off.
    """
    for text in (a, b):
        if len(text) > MATH_VERIFY_MAX_CHARS or any(bad in text for bad in ("^", "*", "!")):
            return False
        if not any(c.isdigit() for c in text):  # "x" == "x" symbolically, but it is no number
            return False
    try:
        from math_verify import parse, verify
    except ImportError:
        return False
    try:
        gold, target = parse(a, parsing_timeout=None), parse(b, parsing_timeout=None)
        return bool(gold and target and verify(gold, target, timeout_seconds=None))
    except Exception:  # a parser failure on odd text means "not shown equal"
        return False


def numbers_equal(a: str | None, b: str | None, rel_tol: float = 1e-9, abs_tol: float = 1e-6) -> bool:
    """Numeric equality with tolerance; fractions and (with math-verify installed) LaTeX too.

    >>> numbers_equal("18", "18.00")
    True
    >>> numbers_equal("1/2", "0.5")
    True
    >>> numbers_equal("1,000,000", "1000001")
    False
    >>> numbers_equal(None, "1")
    False
    """
    if a is None or b is None:
        return False
    x, y = to_decimal(a), to_decimal(b)
    if x is not None and y is not None:
        return _close(x, y, rel_tol, abs_tol)
    return _math_verify_equal(a, b)


# ------------------------------------------------------------------------------ safe arithmetic
def _power(base: float, exponent: float) -> float:
    if abs(exponent) > MAX_EXPONENT:
        raise EvalError(f"exponent {exponent:g} is too large (limit {MAX_EXPONENT})")
    result = base**exponent
    if isinstance(result, complex):
        raise EvalError("power of a negative number is not real")
    return result


_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: _power,
}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos}


def _evaluate(node: ast.AST, depth: int = 0) -> float:
    if depth > MAX_DEPTH:
        raise EvalError(f"expression nested deeper than {MAX_DEPTH}")
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return float(node.value)  # floats keep every operation O(1); ints could grow without bound
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return _BINARY[type(node.op)](_evaluate(node.left, depth + 1), _evaluate(node.right, depth + 1))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand, depth + 1))
    raise EvalError(f"{type(node).__name__} is not allowed (numbers and + - * / // % ** only)")


def safe_eval(expr: str) -> float:
    """The value of an arithmetic expression; `EvalError` for anything else.

    >>> safe_eval("80,000 + 50,000")
    130000.0
    >>> safe_eval("-(2 + 3) * .5")
    -2.5
    >>> safe_eval("__import__('os')")
    Traceback (most recent call last):
    ...
    selftaught.tasks.answers.EvalError: Call is not allowed (numbers and + - * / // % ** only)
    """
    if len(expr) > MAX_EXPR_CHARS:
        raise EvalError(f"expression is {len(expr):,} characters (limit {MAX_EXPR_CHARS})")
    # "1,000" is one number in GSM8K but a tuple to Python; "05" is a syntax error in Python 3
    source = _LEADING_ZEROS_RE.sub("", _THOUSANDS_RE.sub("", expr.strip()))
    try:
        tree = ast.parse(source, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise EvalError(f"not an arithmetic expression: {expr[:50]!r}") from None
    try:
        value = _evaluate(tree.body)
    except ZeroDivisionError:
        raise ZeroDivision("division by zero") from None
    except (OverflowError, RecursionError):
        raise EvalError("result too large or expression too deep") from None
    if not math.isfinite(value):
        raise EvalError("result is not a finite number")
    return value


def iter_annotations(text: str):
    """Bodies of ``<<...>>``; each character is scanned a bounded number of times."""
    pos = 0
    while True:
        start = text.find("<<", pos)
        if start < 0:
            return
        end = text.find(">>", start + 2)
        if end < 0:
            return  # no closing mark anywhere after: no later "<<" can be closed either
        start = text.rfind("<<", start, end)  # "<<a<<b=c>>": the innermost one
        yield text[start + 2 : end]
        pos = end + 2


def _rounded_to(value: float, literal: str) -> bool:
    """Whether ``literal`` is ``value`` rounded to the decimals it shows (annotations write 10/3=3.33)."""
    decimals = len(literal.partition(".")[2]) if "/" not in literal else 0
    if not decimals:
        return False
    return abs(value - float(literal)) <= 0.5 * 10.0**-decimals + 1e-9


def check_annotation(body: str) -> tuple[bool | None, str]:
    """(True, "") if ``expr=value`` is right, (False, the problem) if it is wrong, (None, why) if it
    cannot be evaluated: units or names inside (``500/month*12=6000``), no "=", a value that is not a
    number. Such an annotation is *unchecked*, neither right nor wrong.

    >>> check_annotation("48/2=24"), check_annotation("10/3=3.33")
    ((True, ''), (True, ''))
    >>> check_annotation("2+2=5")
    (False, '<<2+2=5>>: 2+2 is 4, not 5')
    >>> check_annotation("500/month*12=6000")
    (None, '<<500/month*12=6000>>: Name is not allowed (numbers and + - * / // % ** only)')
    """
    where = f"<<{body[:60]}>>"
    if len(body) > MAX_ANNOTATION_CHARS:
        return None, f"{where}: annotation is {len(body):,} characters (limit {MAX_ANNOTATION_CHARS})"
    expr, sep, value = body.rpartition("=")
    literal = _THOUSANDS_RE.sub("", value.strip())
    if not sep or not expr.strip():
        return None, f"{where}: no 'expression=value'"
    if not _LITERAL_RE.fullmatch(literal):
        return None, f"{where}: value {value.strip()[:30]!r} is not a number"
    try:
        got, want = safe_eval(expr), safe_eval(literal)
    except EvalError as err:
        return (False if isinstance(err, ZeroDivision) else None), f"{where}: {err}"
    if not math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-9) and not _rounded_to(got, literal):
        return False, f"{where}: {expr.strip()[:60]} is {got:.10g}, not {value.strip()}"
    return True, ""


@dataclass(frozen=True)
class StepCheck:
    """What the calculator annotations of a text say: how many were evaluated, how many could not be,
    and one line per wrong one."""

    checked: int
    unchecked: int
    problems: tuple[str, ...]


def check_annotations(text: str) -> StepCheck:
    """Every ``<<expr=value>>`` calculator annotation of ``text``, checked.

    >>> check_annotations("16-3-4 = <<16-3-4=9>>9 eggs, 9*2 = <<9*2=19>>19, <<9 eggs*2=18>>")
    StepCheck(checked=2, unchecked=1, problems=('<<9*2=19>>: 9*2 is 18, not 19',))
    """
    count = checked = 0
    problems = []
    for body in iter_annotations(text):
        count += 1
        if count > MAX_ANNOTATIONS:
            continue  # each check parses an expression: bound the work on runaway output
        right, problem = check_annotation(body)
        checked += right is not None
        if right is False:
            problems.append(problem)
    if count > MAX_ANNOTATIONS:
        problems.append(f"{count - MAX_ANNOTATIONS:,} annotations past the first {MAX_ANNOTATIONS:,} were not checked")
    return StepCheck(checked, count - checked, tuple(problems))
