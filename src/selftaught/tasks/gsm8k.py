"""GSM8K: grade-school math word problems with a final numeric answer.

Rows have ``question`` and ``answer``, the gold solution: steps with calculator annotations
``<<expr=value>>``, then ``#### N``. The gold answer is N; the model's answer is its first
``#### N`` (else a boxed answer, else its last answer statement, else its last number; see
`extract_gsm8k_answer`), compared numerically; for a question about a percentage, a fraction of one
("1/4" for 25) counts too. With the STaR release's few-shot file the model writes solutions in the
same format, so its annotations can be recomputed: ``verify_rationale`` reports the first wrong one.
An annotation with units or names inside cannot be evaluated and is *unchecked*, not wrong; a
rationale with no evaluable annotation passes unless ``task.data.require_checked_step``.

Completions end after the ``#### N`` line, or before the next ``Q:`` block.
"""

from __future__ import annotations

import itertools
import re

from selftaught.config import DataConfig
from selftaught.tasks.answers import (
    check_annotations,
    extract_gsm8k_answer,
    normalize_number,
    numbers_equal,
    to_decimal,
)
from selftaught.tasks.base import Example, TaskDataError
from selftaught.tasks.data import describe_data, get_text, load_split, read_rows, validate_rows
from selftaught.tasks.fewshot import Block, few_shot_prefixes, with_question
from selftaught.tasks.stops import Stop, few_shot_stop

MAX_BUCKET = 8  # solutions with this many reasoning lines or more share the bucket "8+"
END_PATTERN = r"####[^\n]*"  # the completion ends with the line of its final answer
STOPS = ("\nQ:",)  # or before the next few-shot block (gold solutions may hold a blank line)
NO_CHECKED_STEP = "no calculator annotation that can be evaluated (task.data.require_checked_step)"
_PERCENT_RE = re.compile(r"percent|%", re.IGNORECASE)


def percent_as_fraction(predicted: str, gold: str, question: str) -> bool:
    """Whether ``predicted`` is the fraction ("1/4", "0.25") of a percentage ``gold`` (25) that the
    question asks for; an answer written with "%" is already a percentage and does not count.

    >>> percent_as_fraction("1/4", "25", "What percent of the pie is left?")
    True
    >>> percent_as_fraction("0.25", "25", "How many pies are left?")
    False
    """
    if "%" in predicted or not _PERCENT_RE.search(question):
        return False
    value, target = to_decimal(predicted), to_decimal(gold)
    return value is not None and target is not None and 0 < abs(value) <= 1 and numbers_equal(str(value * 100), gold)


def gold_answer(solution: str) -> str:
    """N of the solution's ``#### N``, normalized; ValueError saying what is wrong.

    >>> gold_answer("9 * 2 = <<9*2=18>>18\\n#### 1,018")
    '1018'
    """
    _, sep, tail = solution.partition("####")
    if not sep:
        raise ValueError("has no final '#### N'")
    raw = tail.split("\n", 1)[0].strip()
    value = normalize_number(raw)
    if value is None:
        raise ValueError(f"final answer '#### {raw[:30]}' is not a number")
    return value


def parse_row(location: str, row: dict, split: str, index: int, id_field: str = "") -> Example:
    question = get_text(row, "question", location)
    solution = get_text(row, "answer", location)
    try:
        answer = gold_answer(solution)
    except ValueError as err:
        raise TaskDataError(f"{location}: field 'answer' {err}") from None
    example_id = get_text(row, id_field, location) if id_field else f"{split}-{index}"
    return Example(example_id, question, answer, (("solution", solution),))


def hinted_block(block: Block, source: str) -> tuple[str, str]:
    """The block with `` (N)`` after its question, N from its ``#### N`` (as in prompts_answer_key.txt)."""
    try:
        answer = gold_answer(block.answer)
    except ValueError as err:
        raise TaskDataError(f"{source}:{block.line}: few-shot answer {err}; cannot derive the hint") from None
    return f"{block.question} ({answer})", block.answer


class GSM8KTask:
    """GSM8K from a JSONL/JSON/CSV file or a `datasets` id (e.g. openai/gsm8k, config "main")."""

    name = "gsm8k"
    embedded_base: str | None = None  # no embedded M0 reads real GSM8K

    def __init__(self, data: DataConfig):
        self.data = data
        # read now, so a bad few-shot file stops the run before any generation
        self._prefix, self._hinted_prefix = few_shot_prefixes(
            data, hinted_block, lambda block, source: f"#### {gold_answer(block.answer)}"
        )

    def load(self, split: str) -> list[Example]:
        return load_split(self.data, split, parse_row)

    def prompt(self, example: Example, hint: bool = False, few_shot: bool = True) -> str:
        question = f"Q: {example.question} ({example.answer})" if hint else f"Q: {example.question}"
        prefix = (self._hinted_prefix if hint else self._prefix) if few_shot else ""
        return with_question(prefix, f"{question}\nA:")

    def extract_answer(self, completion: str, example: Example | None = None) -> str | None:
        return extract_gsm8k_answer(completion, example.question if example else None)

    def check(self, predicted: str | None, example: Example) -> bool:
        if predicted is None:
            return False
        return numbers_equal(predicted, example.answer) or percent_as_fraction(
            predicted, example.answer, example.question
        )

    def verify_rationale(self, example: Example, completion: str) -> str | None:
        """The first calculator annotation whose value is wrong; None when all that can be evaluated
        are right (with ``require_checked_step``, at least one must be)."""
        steps = check_annotations(completion)
        if steps.problems:
            return steps.problems[0]
        if self.data.require_checked_step and not steps.checked:
            return NO_CHECKED_STEP
        return None

    def direct_completion(self, example: Example) -> str:
        return f" #### {example.answer}"

    def bucket(self, example: Example) -> str:
        """Reasoning lines in the gold solution (lines before ``####``), "8+" for long ones."""
        solution = dict(example.meta).get("solution", "")
        steps = sum(1 for line in solution.partition("####")[0].split("\n") if line.strip())
        return f"{MAX_BUCKET}+" if steps >= MAX_BUCKET else str(steps)

    def max_new_tokens(self, example: Example) -> int:
        return self.data.max_new_tokens

    def stop(self) -> Stop:
        return few_shot_stop(self.data.stop, END_PATTERN, STOPS)

    def answer_rule(self) -> str:
        return "`#### N`, else the number after 'the answer is', else the last number; compared numerically"

    def description(self) -> str:
        return describe_data(self.name, self.data)


def validate_gsm8k(path: str) -> dict:
    """Row problems, plus checks of the gold solutions: extraction and calculator annotations."""
    stats = {"gold_answer_mismatch": 0, "annotations": 0, "annotations_failed": 0, "annotations_unchecked": 0}
    stats["annotation_problems"] = []
    counter = itertools.count()

    def parse(location: str, row: dict) -> Example:
        example = parse_row(location, row, "row", next(counter))
        solution = example.meta[0][1]
        if extract_gsm8k_answer(solution) != example.answer:
            stats["gold_answer_mismatch"] += 1
        steps = check_annotations(solution)
        stats["annotations"] += steps.checked + steps.unchecked
        stats["annotations_unchecked"] += steps.unchecked
        stats["annotations_failed"] += len(steps.problems)
        room = 20 - len(stats["annotation_problems"])
        stats["annotation_problems"] += [f"{location}: {problem}" for problem in steps.problems[:room]]
        return example

    report = validate_rows(read_rows(path), parse)
    return {**report, **stats}
