"""CommonsenseQA: five-way multiple choice, prompted as in the STaR release.

Rows: ``{"answerKey": "A", "id": ..., "question": {"stem": ..., "choices": [{"label", "text"}]}}``.
Labels are lowercased; the prompt lists ``(a) text`` lines and the model ends with "the answer is
text (x)." The hinted prompt marks the right line `` (CORRECT)``, as prompts_answer_key.txt does.

Grading keeps the Task protocol, which gives ``extract_answer`` the completion but not the choices:
it returns the label when the completion names one after "the answer is" ("... basket (b)." or "...
is b."), else the words there ("basket"), else the last "(x)" in the text; ``check`` maps words to
the example's choice. This equals `extract_choice` with the example's choices except that an answer
phrase naming no choice (or a letter no choice has) is graded wrong instead of falling back to a stray
"(x)" elsewhere in the completion.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter

from selftaught.config import DataConfig
from selftaught.tasks.answers import answer_window, choice_in_window, label_in_window, last_label
from selftaught.tasks.base import Example, TaskDataError
from selftaught.tasks.data import get_field, get_text, load_split, read_rows, validate_rows
from selftaught.tasks.fewshot import Block, few_shot_prefixes, with_question

LETTERS = "abcdefghijklmnopqrstuvwxyz"
ANY_LABEL = set(LETTERS)  # extract_answer sees no choices, so any letter may be a label
_FINAL_LABEL_RE = re.compile(r"\(([a-z])\)")


def _choices(location: str, row: dict) -> tuple[tuple[str, str], ...]:
    raw = get_field(row, "question.choices", location)
    if not isinstance(raw, list) or not raw:
        raise TaskDataError(f"{location}: field 'question.choices' must be a non-empty list")
    choices = []
    for k, choice in enumerate(raw):
        field = f"question.choices[{k}]"
        if not isinstance(choice, dict):
            raise TaskDataError(f"{location}: field '{field}' must be an object with label and text")
        label = get_text(choice, "label", f"{location}: {field}").lower()
        text = get_text(choice, "text", f"{location}: {field}")
        if len(label) != 1 or label not in LETTERS:
            raise TaskDataError(f"{location}: field '{field}.label' must be one letter, got {label!r}")
        if any(label == seen for seen, _ in choices):
            raise TaskDataError(f"{location}: field '{field}.label' repeats label {label!r}")
        choices.append((label, text))
    return tuple(choices)


def parse_row(location: str, row: dict, split: str, index: int, id_field: str = "") -> Example:
    stem = get_text(row, "question.stem", location)
    choices = _choices(location, row)
    answer = get_text(row, "answerKey", location).lower()
    if answer not in {label for label, _ in choices}:
        labels = ", ".join(label for label, _ in choices)
        raise TaskDataError(f"{location}: field 'answerKey' {answer!r} is not one of the labels ({labels})")
    if id_field or "id" in row:
        example_id = get_text(row, id_field or "id", location)
    else:
        example_id = f"{split}-{index}"
    return Example(example_id, stem, answer, (("choices", choices),))


def hinted_block(block: Block, source: str) -> tuple[str, str]:
    """The block with `` (CORRECT)`` after the choice its answer ends on, as in prompts_answer_key.txt."""
    finals = _FINAL_LABEL_RE.findall(block.answer)
    if not finals:
        raise TaskDataError(f"{source}:{block.line}: few-shot answer has no final '(x)'; cannot derive the hint")
    lines = block.question.split("\n")
    marked = [k for k, line in enumerate(lines) if line.startswith(f"({finals[-1]}) ")]
    if not marked:
        raise TaskDataError(f"{source}:{block.line}: no choice line '({finals[-1]}) ...' for the answer's label")
    lines[marked[0]] += " (CORRECT)"
    return "\n".join(lines), block.answer


def direct_block_answer(block: Block, source: str) -> str:
    """The few-shot answer without its rationale: from "the answer is" on (few-shot direct)."""
    at = block.answer.lower().rfind("the answer is")
    if at < 0:
        raise TaskDataError(f"{source}:{block.line}: few-shot answer has no 'the answer is'; cannot make it direct")
    return "The" + block.answer[at + 3 :]


class CommonsenseQATask:
    """CommonsenseQA from its JSONL release (train_rand_split.jsonl, dev_rand_split.jsonl)."""

    name = "commonsenseqa"

    def __init__(self, data: DataConfig):
        self.data = data
        # read now, so a bad few-shot file stops the run before any generation
        self._prefix, self._hinted_prefix = few_shot_prefixes(data, hinted_block, direct_block_answer)

    def load(self, split: str) -> list[Example]:
        return load_split(self.data, split, parse_row)

    @staticmethod
    def choices(example: Example) -> tuple[tuple[str, str], ...]:
        return dict(example.meta).get("choices", ())

    def prompt(self, example: Example, hint: bool = False, few_shot: bool = True) -> str:
        lines = [f"Q: {example.question}", "Answer Choices:"]
        for label, text in self.choices(example):
            mark = " (CORRECT)" if hint and label == example.answer else ""
            lines.append(f"({label}) {text}{mark}")
        prefix = (self._hinted_prefix if hint else self._prefix) if few_shot else ""
        return with_question(prefix, "\n".join(lines) + "\nA:")

    def extract_answer(self, completion: str) -> str | None:
        """A label when the completion gives one, else the words after "the answer is" (see module doc)."""
        window = answer_window(completion)
        if window:
            words = window.rstrip(".!").strip()
            return label_in_window(window, ANY_LABEL) or words or last_label(completion, ANY_LABEL)
        return last_label(completion, ANY_LABEL)

    def check(self, predicted: str | None, example: Example) -> bool:
        if not predicted:
            return False
        if len(predicted) == 1:
            return predicted.lower() == example.answer
        return choice_in_window(predicted, list(self.choices(example))) == example.answer

    def verify_rationale(self, example: Example, completion: str) -> str | None:
        return None  # no process check for free-text rationales

    def direct_completion(self, example: Example) -> str:
        text = dict(self.choices(example)).get(example.answer, "")
        return f" The answer is {text} ({example.answer})."

    def bucket(self, example: Example) -> str:
        """Question length: short (< 10 words), medium (10-19), long (20+)."""
        words = len(example.question.split())
        return "short" if words < 10 else "medium" if words < 20 else "long"

    def max_new_tokens(self, example: Example) -> int:
        return self.data.max_new_tokens


def validate_commonsenseqa(path: str) -> dict:
    """Row problems, and how many valid rows have each number of choices."""
    by_count: Counter = Counter()
    counter, seen = itertools.count(), set()

    def parse(location: str, row: dict) -> Example:
        example = parse_row(location, row, "row", next(counter))
        if example.id not in seen:  # validate_rows rejects a repeated id; do not count it
            seen.add(example.id)
            by_count[len(example.meta[0][1])] += 1
        return example

    report = validate_rows(read_rows(path), parse)
    return {**report, "rows_by_choices": {str(n): by_count[n] for n in sorted(by_count)}}
