"""The two row types of a run: graded samples (generated.jsonl, eval.jsonl) and training records (train.jsonl).

Small frozen classes rather than string-keyed dicts, so a misspelt field fails where it is written, not
three modules later; ``to_json`` / ``from_json`` keep the files' format exactly as before.

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

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, row: dict) -> Sample:
        return cls(**{name: row[name] for name in SAMPLE_KEYS})


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


SAMPLE_KEYS = tuple(f.name for f in fields(Sample))
RECORD_KEYS = tuple(f.name for f in fields(Record))


def read_samples(path: str | Path) -> list[Sample]:
    """A run's generated.jsonl / eval.jsonl (or a chunk of one); a missing field names the file and line."""
    return [Sample.from_json(row) for row in rundir.read_jsonl(path, SAMPLE_KEYS)]


def read_records(path: str | Path) -> list[Record]:
    return [Record.from_json(row) for row in rundir.read_jsonl(path, RECORD_KEYS)]


def write_rows(path: str | Path, rows: list[Sample] | list[Record]) -> None:
    """Atomically write samples or records as JSON lines."""
    atomic.atomic_write_jsonl(path, [row.to_json() for row in rows])
