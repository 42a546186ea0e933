"""CommonsenseQA: five-way multiple choice, prompted as in the STaR release.

Rows: ``{"answerKey": "A", "id": ..., "question": {"stem": ..., "choices": [{"label", "text"}]}}``.
Labels are lowercased; the prompt lists ``(a) text`` lines and the model ends with "the answer is
text (x)." The hinted prompt marks the right line `` (CORRECT)``, as prompts_answer_key.txt does.

The answer is the label `extract_choice` finds with the example's choices: from the last answer
statement that names a choice, by letter or by choice text; a hedge between two choices, or a letter
and a choice text that disagree, is no answer (a miss is better than a wrong rationale kept).
Without the example, only letters count. Completions end after the answer sentence ("... the answer
is blotter (e)."), or before the next ``Q:`` block.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter

from selftaught.config import DataConfig
from selftaught.tasks.base import Example, TaskDataError
from selftaught.tasks.choices import extract_choice
from selftaught.tasks.data import describe_data, get_field, get_text, load_split, read_rows, validate_rows
from selftaught.tasks.fewshot import Block, few_shot_prefixes, with_question
from selftaught.tasks.stops import Stop, few_shot_stop

LETTERS = "abcdefghijklmnopqrstuvwxyz"
ANY_LABEL = [(letter, "") for letter in LETTERS]  # without the example: letters only, no choice texts
_FINAL_LABEL_RE = re.compile(r"\(([a-z])\)")
# the completion ends with its answer sentence: "... the answer is blotter (e)." (to the sentence's end, so
# that a hedge "(c) country or (d) town." is graded whole)
END_PATTERN = r"(?i:the answer is)[^\n]{0,200}?\([A-Za-z]\)[^\n]{0,200}?\.(?=\s|$)"
STOPS = ("\nQ:",)  # or before the next few-shot block


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
    embedded_base = None

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

    def extract_answer(self, completion: str, example: Example | None = None) -> str | None:
        """The label chosen (see module doc); letters only when ``example`` is not given."""
        return extract_choice(completion, list(self.choices(example)) if example else ANY_LABEL)

    def check(self, predicted: str | None, example: Example) -> bool:
        return predicted is not None and predicted.lower() == example.answer

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

    def stop(self) -> Stop:
        return few_shot_stop(self.data.stop, END_PATTERN, STOPS)

    def answer_rule(self) -> str:
        return "the choice label after 'the answer is' (or the choice's text), else the last (a)-(e) label"

    def description(self) -> str:
        return describe_data(self.name, self.data)


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
