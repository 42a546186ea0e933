"""A user's own question/answer data: JSONL, a JSON list, CSV or a `datasets` id.

Field names come from ``task.data`` (``question_field`` / ``answer_field``, dotted for nested JSON such
as ``question.stem``; ``id_field`` optional). Answers are compared after the ``normalizer``:

* ``text``: stripped, casefolded, whitespace collapsed, trailing punctuation dropped;
* ``number``: canonical numbers, compared numerically (a gold answer that is not a number is a data error);
* ``choice``: a single letter, lowercased (``"(B)"`` -> ``"b"``).

The model's answer is group 1 of the last match of ``answer_pattern`` when one is set, else found by
the normalizer: ``#### N`` / "the answer is N" / the last number; the letter after "the answer is" or
the last ``(x)``; the text after the last "the answer is" up to the end of its sentence, else the last
non-empty line. A row's ``bucket`` or ``difficulty`` field, when present, labels it for reports.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import re
import string

import regex

from selftaught.config import ConfigError, DataConfig
from selftaught.tasks.answers import extract_gsm8k_answer, normalize_number, numbers_equal
from selftaught.tasks.base import Example, TaskDataError
from selftaught.tasks.choices import extract_choice
from selftaught.tasks.data import describe_data, get_text, load_examples, read_rows, split_source, validate_rows
from selftaught.tasks.fewshot import Block, few_shot_prefixes, with_question
from selftaught.tasks.stops import Stop, few_shot_stop

log = logging.getLogger(__name__)

BUCKET_FIELDS = ("bucket", "difficulty")
# answer_pattern is the user's regex run on untrusted model output. Matching only the last
# PATTERN_WINDOW characters keeps polynomial backtracking (``.*=.*=``) small on long completions;
# exponential backtracking (``(a+)+$`` takes seconds on 25 characters) is not helped by any window,
# so the match also runs under a wall-clock timeout, which Python's `re` lacks and `regex` has.
PATTERN_WINDOW = 4000
PATTERN_TIMEOUT_S = 0.25
LETTER_CHOICES = [(letter, "") for letter in string.ascii_lowercase]  # labels only, no choice texts
TRAILING_PUNCTUATION = ".,;:!?"

_WHITESPACE_RE = re.compile(r"\s+")
_CHOICE_RE = re.compile(r"\(?\s*([A-Za-z])\s*[).:]?")
_ANSWER_IS_RE = re.compile(r"the answer is", re.IGNORECASE)
_SENTENCE_END_RE = re.compile(r"[.!?](?=\s|$)|\n")


def normalize_text(text: str) -> str:
    """Casefolded, whitespace collapsed, trailing punctuation dropped.

    >>> normalize_text("  New   York City. ")
    'new york city'
    """
    return _WHITESPACE_RE.sub(" ", text.strip().casefold()).rstrip(TRAILING_PUNCTUATION).strip()


def normalize_choice(text: str) -> str | None:
    """The single letter of ``"B"``, ``"(b)"``, ``"b)"`` or ``"B."``, lowercased; None otherwise.

    >>> normalize_choice(" (B) "), normalize_choice("blue")
    ('b', None)
    """
    match = _CHOICE_RE.fullmatch(text.strip())
    return match.group(1).lower() if match else None


def normalize(text: str, normalizer: str) -> str | None:
    """``text`` in the normalizer's canonical form; None when it has none (no number, not a letter)."""
    if normalizer == "number":
        return normalize_number(text)
    if normalizer == "choice":
        return normalize_choice(text)
    return normalize_text(text) or None


def extract_text_answer(completion: str) -> str | None:
    """The text after the last "the answer is" up to the end of its sentence, else the last non-empty line.

    >>> extract_text_answer("Paris is in France. So the answer is: Paris. Done")
    'Paris'
    >>> extract_text_answer("thinking...\\nLyon\\n")
    'Lyon'
    """
    last = None
    for last in _ANSWER_IS_RE.finditer(completion):  # noqa: B007 - only the last match is wanted
        pass
    if last is not None:
        rest = completion[last.end() :]
        end = _SENTENCE_END_RE.search(rest)
        answer = rest[: end.start() if end else len(rest)].strip(" \t:")
        if answer:
            return answer
    lines = [line.strip() for line in completion.split("\n") if line.strip()]
    return lines[-1] if lines else None


def gold_answer(raw: str, normalizer: str) -> str:
    """The answer stored on the Example; ValueError saying what is wrong with it."""
    if normalizer == "text":
        if not normalize_text(raw):
            raise ValueError("has no text left after normalization")
        return raw  # shown as-is in hints; compared after normalize_text
    value = normalize(raw, normalizer)
    if value is None:
        kind = "one number" if normalizer == "number" else "a single choice letter"
        raise ValueError(f"must be {kind}, got {raw[:40]!r}")
    return value


def _bucket_meta(row: dict, location: str) -> tuple:
    for name in BUCKET_FIELDS:
        if name not in row or row[name] is None:
            continue
        value = row[name]
        if not isinstance(value, (str, int, float)):
            raise TaskDataError(f"{location}: field '{name}' must be text or a number, got {type(value).__name__}")
        if str(value).strip():
            return (("bucket", str(value).strip()),)
    return ()


def parse_row(location: str, row: dict, data: DataConfig, split: str, index: int) -> Example:
    """One row as an Example; TaskDataError naming the location and field."""
    question = get_text(row, data.question_field, location)
    raw = get_text(row, data.answer_field, location)
    try:
        answer = gold_answer(raw, data.normalizer)
    except ValueError as err:
        raise TaskDataError(f"{location}: field '{data.answer_field}' {err}") from None
    example_id = get_text(row, data.id_field, location) if data.id_field else f"{split}-{index}"
    return Example(example_id, question, answer, _bucket_meta(row, location))


class JsonlTask:
    """Questions and answers from any file or `datasets` id, graded by a configurable normalizer."""

    name = "jsonl"
    embedded_base = None

    def __init__(self, data: DataConfig):
        self.data = data
        self._pattern = None
        if data.answer_pattern:
            try:
                self._pattern = regex.compile(data.answer_pattern)
            except regex.error as err:  # valid for `re` (config checked it) but not for `regex`
                raise ConfigError(f"task.data.answer_pattern cannot be compiled: {err}") from None
        self._warned_timeout = False
        # read now, so a bad few-shot file stops the run before any generation
        self._prefix, self._hinted_prefix = few_shot_prefixes(
            data, self._hinted_block, lambda block, source: f"The answer is {self._block_answer(block, source)}."
        )

    def _block_answer(self, block: Block, source: str) -> str:
        """The answer of a few-shot block, found by this task's extractor."""
        answer = self.extract_answer(block.answer)
        if answer is None:
            raise TaskDataError(
                f"{source}:{block.line}: no answer found in the few-shot answer by the "
                f"'{self.data.normalizer}' extractor; cannot derive the hint (or give task.data.few_shot_hinted)"
            )
        return answer

    def _hinted_block(self, block: Block, source: str) -> tuple[str, str]:
        """The block with `` (answer)`` after its question."""
        return f"{block.question} ({self._block_answer(block, source)})", block.answer

    def _parser(self, split: str):
        counter = itertools.count()
        return lambda location, row: parse_row(location, row, self.data, split, next(counter))

    def load(self, split: str) -> list[Example]:
        source, split_name = split_source(self.data, split)
        rows = read_rows(source, split_name, self.data.dataset_config)
        return load_examples(rows, self._parser(split), self.data.max_examples, source)

    def prompt(self, example: Example, hint: bool = False, few_shot: bool = True) -> str:
        question = f"Q: {example.question} ({example.answer})" if hint else f"Q: {example.question}"
        prefix = (self._hinted_prefix if hint else self._prefix) if few_shot else ""
        return with_question(prefix, f"{question}\nA:")

    def _pattern_answer(self, completion: str) -> str | None:
        """Group 1 of the last match in the completion's tail; None on no match or timeout."""
        tail = completion[-PATTERN_WINDOW:]
        last = None
        try:
            for match in self._pattern.finditer(tail, timeout=PATTERN_TIMEOUT_S):
                if match.group(1) is not None:
                    last = match.group(1)
        except TimeoutError:
            if not self._warned_timeout:
                log.warning("task.data.answer_pattern timed out on a completion; counted as no answer")
                self._warned_timeout = True
            return None
        return normalize(last, self.data.normalizer) if last is not None else None

    def extract_answer(self, completion: str, example: Example | None = None) -> str | None:
        if self._pattern is not None:
            return self._pattern_answer(completion)
        if self.data.normalizer == "number":
            return extract_gsm8k_answer(completion, example.question if example else None)
        if self.data.normalizer == "choice":
            return extract_choice(completion, LETTER_CHOICES)
        answer = extract_text_answer(completion)
        return answer if answer is not None and normalize_text(answer) else None

    def check(self, predicted: str | None, example: Example) -> bool:
        if predicted is None:
            return False
        if self.data.normalizer == "number":
            return numbers_equal(predicted, example.answer)
        return normalize(predicted, self.data.normalizer) == normalize(example.answer, self.data.normalizer)

    def verify_rationale(self, example: Example, completion: str) -> str | None:
        return None  # free-form data has no process to check

    def direct_completion(self, example: Example) -> str:
        return f" The answer is {example.answer}."

    def bucket(self, example: Example) -> str:
        return dict(example.meta).get("bucket", "all")

    def max_new_tokens(self, example: Example) -> int:
        return self.data.max_new_tokens

    def stop(self) -> Stop:
        return few_shot_stop(self.data.stop)

    def answer_rule(self) -> str:
        if self.data.answer_pattern:
            return f"group 1 of the regex `{self.data.answer_pattern}` (normalizer: {self.data.normalizer})"
        return f"the task's default extraction for normalizer `{self.data.normalizer}`"

    def description(self) -> str:
        return describe_data(self.name, self.data)


def validate_jsonl(data: DataConfig, path: str) -> dict:
    """Row problems, plus how many direct answers the extractor cannot read back (a pattern/data mismatch)."""
    task = JsonlTask(dataclasses.replace(data, few_shot="", few_shot_hinted=""))  # rows only, not prompts
    split_name = data.test_split if path == data.test and path != data.train else data.train_split
    stats = {"direct_answer_unreadable": 0}
    counter = itertools.count()

    def parse(location: str, row: dict) -> Example:
        example = parse_row(location, row, data, "row", next(counter))
        if not task.check(task.extract_answer(task.direct_completion(example)), example):
            stats["direct_answer_unreadable"] += 1
        return example

    report = validate_rows(read_rows(path, split_name, data.dataset_config), parse)
    return {**report, **stats}
