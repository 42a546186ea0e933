"""``selftaught grade``: a task's grader on completions a user already has.

Before a long run, users check the grader on their own model's outputs: rows in the task's data
format plus a completion field; every row is graded exactly as the loop grades a generated sample
(the same cut where a completion ends, the same answer extraction, check and step check). A row may say
``"truncated": true`` when the generation budget cut its completion (vLLM's ``finish_reason == "length"``):
then no answer is read from the number it ends with, as in the loop; rows without the field are not cut.
"""

from __future__ import annotations

from dataclasses import dataclass

from selftaught import star
from selftaught.config import Config, ConfigError
from selftaught.samples import Completion
from selftaught.tasks import make_task
from selftaught.tasks.base import TaskDataError
from selftaught.tasks.data import read_rows
from selftaught.tasks.stops import NO_STOP

GRADED_FIELDS = ("answer", "correct", "verified", "problem")


@dataclass(frozen=True)
class GradeCounts:
    rows: int
    correct: int
    verified: int
    no_answer: int

    def as_dict(self) -> dict:
        return {"rows": self.rows, "correct": self.correct, "verified": self.verified, "no_answer": self.no_answer}


def read_completions(path: str, field: str) -> list[Completion]:
    """The ``field`` of every row, in order, with its optional ``truncated`` flag; `TaskDataError` naming
    file, line and field."""
    completions = []
    for row in read_rows(path, "test"):
        if row.error:
            raise TaskDataError(f"{row.location}: {row.error}")
        if field not in row.data:
            raise TaskDataError(f"{row.location}: field '{field}' is missing (name it with --completion-field)")
        value = row.data[field]
        if not isinstance(value, str):
            raise TaskDataError(f"{row.location}: field '{field}' must be text, got {type(value).__name__}")
        truncated = row.data.get("truncated", False)
        if not isinstance(truncated, bool):
            raise TaskDataError(f"{row.location}: field 'truncated' must be true or false, got {truncated!r:.40}")
        completions.append(Completion(value, truncated))
    return completions


def grade_file(config: Config, path: str, completion_field: str = "completion", raw: bool = False):
    """(one graded row per input row, in input order; the counts). ``raw`` grades each completion
    whole instead of cutting it where the task's completions end (for chat models' outputs)."""
    if config.task.name == "arithmetic":
        raise ConfigError("grade reads question/answer rows from a file; task arithmetic has none (use gsm8k, ...)")
    config.task.data.test, config.task.data.max_examples = path, 0
    task = make_task(config)
    examples = task.load("test")
    completions = read_completions(path, completion_field)
    stop = NO_STOP if raw else task.stop()
    rows = []
    for example, completion in zip(examples, completions, strict=True):
        cut = completion.truncated and stop.find_end(completion) is None  # as generation sees it: a stop ended it
        graded = star.grade(task, example, Completion(stop.cut(completion), cut), hinted=False)
        rows.append({"id": example.id, "gold": example.answer, **{key: getattr(graded, key) for key in GRADED_FIELDS}})
    counts = GradeCounts(
        rows=len(rows),
        correct=sum(r["correct"] for r in rows),
        verified=sum(r["verified"] for r in rows),
        no_answer=sum(r["answer"] is None for r in rows),
    )
    return rows, counts
