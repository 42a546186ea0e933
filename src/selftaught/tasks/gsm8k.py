"""GSM8K: grade-school math word problems with a final numeric answer.

Rows have ``question`` and ``answer``, the gold solution: steps with calculator annotations
``<<expr=value>>``, then ``#### N``. The gold answer is N; the model's answer is its first
``#### N`` (else "the answer is N", else its last number), compared numerically. With the STaR
release's few-shot file the model writes solutions in the same format, so its annotations can be
recomputed: ``verify_rationale`` reports the first wrong one.
"""

from __future__ import annotations

import itertools

from selftaught.config import DataConfig
from selftaught.tasks.answers import check_annotations, extract_gsm8k_answer, normalize_number, numbers_equal
from selftaught.tasks.base import Example, TaskDataError
from selftaught.tasks.data import get_text, load_split, read_rows, validate_rows
from selftaught.tasks.fewshot import Block, few_shot_prefixes, with_question

MAX_BUCKET = 8  # solutions with this many reasoning lines or more share the bucket "8+"


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

    def extract_answer(self, completion: str) -> str | None:
        return extract_gsm8k_answer(completion)

    def check(self, predicted: str | None, example: Example) -> bool:
        return numbers_equal(predicted, example.answer)

    def verify_rationale(self, example: Example, completion: str) -> str | None:
        """The first calculator annotation whose value is wrong; None when all check (or there are none)."""
        _, problems = check_annotations(completion)
        return problems[0] if problems else None

    def direct_completion(self, example: Example) -> str:
        return f" #### {example.answer}"

    def bucket(self, example: Example) -> str:
        """Reasoning lines in the gold solution (lines before ``####``), "8+" for long ones."""
        solution = dict(example.meta).get("solution", "")
        steps = sum(1 for line in solution.partition("####")[0].split("\n") if line.strip())
        return f"{MAX_BUCKET}+" if steps >= MAX_BUCKET else str(steps)

    def max_new_tokens(self, example: Example) -> int:
        return self.data.max_new_tokens


def validate_gsm8k(path: str) -> dict:
    """Row problems, plus checks of the gold solutions: extraction and calculator annotations."""
    stats = {"gold_answer_mismatch": 0, "annotations": 0, "annotations_failed": 0, "annotation_problems": []}
    counter = itertools.count()

    def parse(location: str, row: dict) -> Example:
        example = parse_row(location, row, "row", next(counter))
        solution = example.meta[0][1]
        if extract_gsm8k_answer(solution) != example.answer:
            stats["gold_answer_mismatch"] += 1
        count, problems = check_annotations(solution)
        stats["annotations"] += count
        stats["annotations_failed"] += len(problems)
        room = 20 - len(stats["annotation_problems"])
        stats["annotation_problems"] += [f"{location}: {problem}" for problem in problems[:room]]
        return example

    report = validate_rows(read_rows(path), parse)
    return {**report, **stats}
