"""The row types of a run: graded samples (generated.jsonl, eval.jsonl), training records (train.jsonl) and
preference pairs (pairs.jsonl: the verifier's, or a ``train.objective=rpo`` iteration's); and the
`Completion` a generator hands to grading.

Small frozen classes rather than string-keyed dicts, so a misspelt field fails where it is written, not
three modules later; ``to_json`` / ``from_json`` keep the files' format exactly as before (a sample's
``truncated`` came later: rows written without it read as not cut by the budget).

>>> s = Sample("q1", False, 0, "3+4=7", "7", True, True, None)
>>> Sample.from_json(s.to_json()) == s
True
>>> Record("q1", "3+4=", "7", "generated").to_json()
{'id': 'q1', 'prompt': '3+4=', 'completion': '7', 'source': 'generated'}
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

from selftaught import rundir  # by module: tests replace its writers to simulate a full disk
from selftaught.common import atomic

SOURCES = ("generated", "rationalized", "direct")


class Completion(str):
    """A generated text that also says whether the generation budget cut it (``truncated``): the model
    neither ended it (EOS, end of turn) nor reached the task's stop. A cut text may end mid-number
    ("#### 12" of 125), so grading reads no answer from its last number. It is a `str`, so code that
    only wants the text needs nothing else; a plain `str` counts as not cut.

    >>> text = Completion("so 9 * 2 = 1", truncated=True)
    >>> text == "so 9 * 2 = 1", text.truncated, is_truncated(text), is_truncated("so 9 * 2 = 1")
    (True, True, True, False)
    """

    truncated: bool

    def __new__(cls, text: str, truncated: bool = False) -> Completion:
        made = super().__new__(cls, text)
        made.truncated = bool(truncated)
        return made


def is_truncated(text: str) -> bool:
    """Whether the budget cut ``text``: a `Completion`'s flag; False for a plain `str`."""
    return bool(getattr(text, "truncated", False))


@dataclass(frozen=True)
class Sample:
    """One graded completion of one question."""

    id: str
    hinted: bool  # generated with the answer as a hint (rationalization)
    sample: int  # which of the question's ``num_samples``
    text: str  # the completion, cut where the task's stop says it ends
    answer: str | None  # the extracted answer; None when none could be read
    correct: bool  # the answer equals the ground truth
    verified: bool  # correct, and ``task.verify_rationale`` found no faulty step
    problem: str | None  # the faulty step verify_rationale found, if any
    truncated: bool = False  # the generation budget cut the completion (files written before lack it)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, row: dict) -> Sample:
        return cls(**{name: row[name] for name in SAMPLE_KEYS}, truncated=row.get("truncated") is True)


@dataclass(frozen=True)
class Record:
    """One training example: the unhinted prompt and the completion to learn."""

    id: str
    prompt: str
    completion: str
    source: str  # generated | rationalized | direct

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, row: dict) -> Record:
        return cls(**{name: row[name] for name in RECORD_KEYS})


@dataclass(frozen=True)
class Pair:
    """One preference pair: two completions of question ``id``, the first right, the second wrong (which
    is which is the rule of the code that builds them: `verifier.pairs`)."""

    id: str
    chosen: str  # a right solution (answer right; for the verifier, every step check passed too)
    rejected: str  # a wrong one (wrong or no answer, or a failed step check)
    iteration: int  # the first iteration whose samples gave this pair

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, row: dict) -> Pair:
        return cls(**{name: row[name] for name in PAIR_KEYS})


SAMPLE_KEYS = tuple(f.name for f in fields(Sample) if f.name != "truncated")  # the keys every row holds
RECORD_KEYS = tuple(f.name for f in fields(Record))
PAIR_KEYS = tuple(f.name for f in fields(Pair))


def read_samples(path: str | Path) -> list[Sample]:
    """A run's generated.jsonl / eval.jsonl (or a chunk of one); a missing field names the file and line."""
    return [Sample.from_json(row) for row in rundir.read_jsonl(path, SAMPLE_KEYS)]


def read_records(path: str | Path) -> list[Record]:
    return [Record.from_json(row) for row in rundir.read_jsonl(path, RECORD_KEYS)]


def read_pairs(path: str | Path) -> list[Pair]:
    return [Pair.from_json(row) for row in rundir.read_jsonl(path, PAIR_KEYS)]


def write_rows(path: str | Path, rows: list[Sample] | list[Record] | list[Pair]) -> None:
    """Atomically write samples, records or pairs as JSON lines."""
    atomic.atomic_write_jsonl(path, [row.to_json() for row in rows])
