"""n-digit addition with a scratchpad: the paper's first task, and the embedded default.

Two formats of the same computation:

* ``compact`` (default): numbers least significant digit first, one 5-digit step per column,
  ``a b carry_in sum carry_out``, then ``|`` and the reversed sum. 123 + 4567 = 4690 is::

      321+7654=37001,26190,15060,04040|0964

  The hinted prompt (rationalization) shows the reversed answer: ``321+7654(0964)=``.
* ``scratchpad``: the format of Nye et al. used by the STaR paper (one line per column, remaining
  operands on the left, result so far on the right)::

      Input:
      1 2 3 + 4 5 6 7
      Target:
      <scratch>
      1 2 3 + 4 5 6 7 , C: 0
      1 2 + 4 5 6 , 0 C: 1
      ...
      </scratch>
      4 6 9 0

Both parse to the same list of steps, so one verifier checks both: each step reads the right operand
digits, its carry-in is the previous carry-out, its digit and carry-out are right, and the answer is
what the steps computed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from selftaught.tasks.base import EMBEDDED_ARITHMETIC, Example
from selftaught.tasks.stops import NO_STOP, Stop

FORMATS = ("compact", "scratchpad")


@dataclass(frozen=True)
class Step:
    a: int
    b: int
    carry_in: int
    digit: int
    carry_out: int


def column_steps(a: str, b: str) -> list[Step]:
    """The correct steps for a + b, least significant column first.

    >>> [(s.digit, s.carry_out) for s in column_steps("95", "7")]
    [(2, 1), (0, 1)]
    """
    ra, rb = a[::-1], b[::-1]
    steps, carry = [], 0
    for i in range(max(len(a), len(b))):
        da = int(ra[i]) if i < len(ra) else 0
        db = int(rb[i]) if i < len(rb) else 0
        total = da + db + carry
        steps.append(Step(da, db, carry, total % 10, total // 10))
        carry = total // 10
    return steps


def _operands(question: str) -> tuple[str, str]:
    a, _, b = question.partition("+")
    return a, b


def normalize_number(text: str) -> str:
    """Digits without leading zeros ("0" stays "0")."""
    return text.lstrip("0") or "0"


# ----------------------------------------------------------------------------- compact format
def compact_prompt(a: str, b: str, hint: str | None = None) -> str:
    hint_text = f"({hint[::-1]})" if hint is not None else ""
    return f"{a[::-1]}+{b[::-1]}{hint_text}="


def compact_completion(a: str, b: str) -> str:
    steps = column_steps(a, b)
    body = ",".join(f"{s.a}{s.b}{s.carry_in}{s.digit}{s.carry_out}" for s in steps)
    return f"{body}|{str(int(a) + int(b))[::-1]}"


def compact_answer(completion: str) -> str | None:
    """The answer after the last ``|``, un-reversed; None if missing or not digits.

    >>> compact_answer("37001,26190|0964")
    '4690'
    >>> compact_answer("3700") is None
    True
    """
    head, sep, tail = completion.rpartition("|")
    tail = tail.strip()
    if not sep or not tail.isdigit() or not tail.isascii():
        return None
    return normalize_number(tail[::-1])


def compact_steps(completion: str) -> tuple[list[Step], str] | str:
    """Parse steps and the raw (reversed) answer; a string return is the parse problem."""
    body, sep, answer = completion.rpartition("|")
    if not sep:
        return "no '|' before the answer"
    steps = []
    for k, chunk in enumerate(body.split(",") if body else [], start=1):
        if len(chunk) != 5 or not chunk.isdigit() or not chunk.isascii():
            return f"step {k} is not five digits: {chunk[:20]!r}"
        steps.append(Step(*(int(c) for c in chunk)))
    return steps, answer.strip()[::-1]


# ------------------------------------------------------------------------- scratchpad format
def _spaced(digits: str) -> str:
    return " ".join(digits)


def scratchpad_prompt(a: str, b: str, hint: str | None = None) -> str:
    hint_text = f"Hint: {_spaced(hint)}\n" if hint is not None else ""
    return f"Input:\n{_spaced(a)} + {_spaced(b)}\n{hint_text}Target:\n"


def scratchpad_completion(a: str, b: str) -> str:
    lines = [f"{_spaced(a)} + {_spaced(b)} , C: 0"]
    result = ""
    for k, step in enumerate(column_steps(a, b), start=1):
        result = f"{step.digit}{result}"
        rest_a, rest_b = a[: max(len(a) - k, 0)], b[: max(len(b) - k, 0)]
        left = f"{_spaced(rest_a)} + {_spaced(rest_b)} " if rest_a or rest_b else ""
        lines.append(f"{left}, {_spaced(result)} C: {step.carry_out}")
    total = str(int(a) + int(b))
    final = f"{column_steps(a, b)[-1].carry_out}{result}"
    return "<scratch>\n" + "\n".join(lines) + f"\n{_spaced(final)}\n</scratch>\n{_spaced(total)}"


def scratchpad_answer(completion: str) -> str | None:
    _, sep, tail = completion.rpartition("</scratch>")
    digits = tail.replace(" ", "").strip()
    if not sep or not digits.isdigit() or not digits.isascii():
        return None
    return normalize_number(digits)


def scratchpad_steps(completion: str, a: str, b: str) -> tuple[list[Step], str] | str:
    """Rebuild column steps from the scratchpad lines (each line adds one result digit)."""
    inner, sep, answer = completion.partition("</scratch>")
    lines = [ln for ln in inner.replace("<scratch>", "").split("\n") if ln.strip()]
    if not sep or len(lines) < 2:
        return "scratchpad not closed or empty"
    parsed = []
    for k, line in enumerate(lines[:-1], start=1):
        left, comma, right = line.rpartition(",")
        result, _, carry = right.partition("C:")
        if not comma or not carry.strip().isdigit():
            return f"line {k} is not 'operands , result C: carry'"
        op_a, _, op_b = left.partition("+")
        parsed.append((op_a.replace(" ", ""), op_b.replace(" ", ""), result.replace(" ", ""), int(carry)))
    if (parsed[0][0], parsed[0][1]) != (a, b):
        return "first line does not restate the operands"
    steps = []
    for (pa, pb, presult, pcarry), (na, nb, nresult, ncarry) in zip(parsed, parsed[1:]):
        if not nresult.endswith(presult) or len(nresult) != len(presult) + 1 or not nresult.isdigit():
            return "result digits not extended by exactly one digit"
        if na != pa[:-1] or nb != pb[:-1]:
            return "operand digits not consumed right to left"
        da = int(pa[-1]) if pa else 0
        db = int(pb[-1]) if pb else 0
        steps.append(Step(da, db, pcarry, int(nresult[0]), ncarry))
    return steps, answer.replace(" ", "").strip()


# ------------------------------------------------------------------------------ verifier
def check_steps(a: str, b: str, steps: list[Step], answer: str) -> str | None:
    """None if every step is right, else the first problem found.

    >>> check_steps("5", "7", [Step(5, 7, 0, 2, 1)], "12") is None
    True
    >>> check_steps("5", "7", [Step(5, 7, 0, 3, 1)], "13")
    'step 1: 5+7+0 does not give digit 3'
    """
    expected = column_steps(a, b)
    if len(steps) != len(expected):
        return f"{len(steps)} steps for {len(expected)} columns"
    carry = 0
    for k, (got, want) in enumerate(zip(steps, expected), start=1):
        if (got.a, got.b) != (want.a, want.b):
            return f"step {k}: read {got.a},{got.b} instead of operand digits {want.a},{want.b}"
        if got.carry_in != carry:
            return f"step {k}: carry in {got.carry_in} but previous carry out was {carry}"
        total = got.a + got.b + got.carry_in
        if got.digit != total % 10:
            return f"step {k}: {got.a}+{got.b}+{got.carry_in} does not give digit {got.digit}"
        if got.carry_out != total // 10:
            return f"step {k}: {got.a}+{got.b}+{got.carry_in} does not give carry {got.carry_out}"
        carry = got.carry_out
    computed = "".join(str(s.digit) for s in reversed(steps))
    computed = normalize_number(f"{carry}{computed}")
    if not answer.isdigit() or normalize_number(answer) != computed:
        return f"answer {answer[:30]!r} is not what the steps computed ({computed})"
    return None


# ---------------------------------------------------------------------------------- task
def _digit_range(num_digits: int) -> tuple[int, int]:
    return (0, 9) if num_digits == 1 else (10 ** (num_digits - 1), 10**num_digits - 1)


def sample_pairs(num_digits: int, count: int, rng: random.Random, exclude: set) -> list[tuple[str, str]]:
    """Up to ``count`` distinct n-digit pairs not in ``exclude`` (fewer if the space is small)."""
    low, high = _digit_range(num_digits)
    space = (high - low + 1) ** 2
    if space <= 4 * (count + len(exclude)):  # small space: enumerate, then shuffle
        pool = [(str(x), str(y)) for x in range(low, high + 1) for y in range(low, high + 1)]
        pool = [p for p in pool if p not in exclude]
        rng.shuffle(pool)
        return pool[:count]
    chosen: dict[tuple[str, str], None] = {}
    while len(chosen) < count:
        pair = (str(rng.randint(low, high)), str(rng.randint(low, high)))
        if pair not in exclude:
            chosen[pair] = None
    return list(chosen)


class ArithmeticTask:
    """Seeded n-digit addition; train and test pairs are disjoint."""

    name = "arithmetic"
    embedded_base = EMBEDDED_ARITHMETIC  # the char-level M0 trained on short sums

    def __init__(
        self,
        train_digits: list[int],
        test_digits: list[int],
        train_per_digit: int,
        test_per_digit: int,
        format: str = "compact",
        seed: int = 0,
    ):
        if format not in FORMATS:
            raise ValueError(f"unknown arithmetic format {format!r}; choose one of {FORMATS}")
        self.format, self.seed = format, seed
        self.train_digits, self.test_digits = list(train_digits), list(test_digits)
        self.train_per_digit, self.test_per_digit = train_per_digit, test_per_digit
        self._splits: dict[str, list[Example]] = {}

    def _build(self) -> None:
        rng = random.Random(f"arithmetic-{self.seed}")
        test, train = [], []
        self._test_pairs: set = set()
        for n in sorted(set(self.test_digits) | set(self.train_digits)):
            held_out = sample_pairs(n, self.test_per_digit, rng, set()) if n in self.test_digits else []
            # keep at least three quarters of a tiny space (1 digit: 100 pairs) for training
            if n in self.train_digits and len(held_out) > 25 and n == 1:
                held_out = held_out[:25]
            self._test_pairs.update(held_out)
            test += [self._example("test", n, k, p) for k, p in enumerate(held_out)]
            if n in self.train_digits:
                pairs = sample_pairs(n, self.train_per_digit, rng, set(held_out))
                train += [self._example("train", n, k, p) for k, p in enumerate(pairs)]
        self._splits = {"train": train, "test": test}

    @staticmethod
    def _example(split: str, n: int, k: int, pair: tuple[str, str]) -> Example:
        a, b = pair
        return Example(f"{split}-{n}d-{k:05d}", f"{a}+{b}", str(int(a) + int(b)), (("digits", n),))

    def load(self, split: str) -> list[Example]:
        if not self._splits:
            self._build()
        if split not in self._splits:
            raise ValueError(f"arithmetic has splits 'train' and 'test', not {split!r}")
        return list(self._splits[split])

    def held_out_pairs(self) -> set:
        """Test pairs, so base-model data can avoid them."""
        if not self._splits:
            self._build()
        return set(self._test_pairs)

    def prompt(self, example: Example, hint: bool = False, few_shot: bool = True) -> str:
        """The question in the model's format (arithmetic has no few-shot prefix)."""
        a, b = _operands(example.question)
        answer = example.answer if hint else None
        return compact_prompt(a, b, answer) if self.format == "compact" else scratchpad_prompt(a, b, answer)

    def gold_completion(self, example: Example) -> str:
        """A correct rationale and answer (only the base model's pretraining uses it)."""
        a, b = _operands(example.question)
        return compact_completion(a, b) if self.format == "compact" else scratchpad_completion(a, b)

    def direct_completion(self, example: Example) -> str:
        if self.format == "compact":
            return f"|{example.answer[::-1]}"
        return f"</scratch>\n{_spaced(example.answer)}"

    def extract_answer(self, completion: str, example: Example | None = None) -> str | None:
        return compact_answer(completion) if self.format == "compact" else scratchpad_answer(completion)

    def check(self, predicted: str | None, example: Example) -> bool:
        return predicted is not None and predicted == normalize_number(example.answer)

    def verify_rationale(self, example: Example, completion: str) -> str | None:
        a, b = _operands(example.question)
        if self.format == "compact":
            parsed = compact_steps(completion)
        else:
            parsed = scratchpad_steps(completion, a, b)
        if isinstance(parsed, str):
            return parsed
        return check_steps(a, b, *parsed)

    def bucket(self, example: Example) -> str:
        """Digit count of the longer operand."""
        return str(max(len(x) for x in _operands(example.question)))

    def max_new_tokens(self, example: Example) -> int:
        n = len(example.answer) + 1
        if self.format == "compact":
            return 6 * n + n + 4
        return 4 * n * n + 8 * n + 40

    def stop(self) -> Stop:
        return NO_STOP  # the embedded model is trained to end its scratchpad with EOS

    def answer_rule(self) -> str:
        if self.format == "compact":
            return "the digits after the last `|`, written least significant digit first (reverse them)"
        return "the digits after `</scratch>`"

    def description(self) -> str:
        return (
            f"arithmetic (n-digit addition, `{self.format}` format): train digits {self.train_digits} "
            f"({self.train_per_digit} each), test digits {self.test_digits} ({self.test_per_digit} each), "
            f"seed {self.seed}"
        )
