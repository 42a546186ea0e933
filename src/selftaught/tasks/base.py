"""The task protocol every dataset implements (arithmetic, GSM8K, CommonsenseQA, custom).

A task knows its data and its grading; it knows nothing about models. The loop only ever calls:

* ``load(split)`` -> examples (question and gold answer, no rationale);
* ``prompt(example, hint=False, few_shot=True)`` -> the text the model continues (the few-shot prefix
  when the task has one and ``few_shot``; with ``hint=True`` the gold answer is shown, for
  rationalization);
* ``extract_answer(completion, example)`` -> the answer the model gave, or None (``example`` lets a
  multiple-choice task read choice texts; extractors must also work without it);
* ``check(predicted, example)`` -> is it the gold answer;
* ``verify_rationale(example, completion)`` -> None if the steps check out, else the first problem
  (tasks without a process check return None);
* ``direct_completion(example)`` -> the answer alone, for the direct fine-tuning baseline;
* ``bucket(example)`` -> a difficulty label for reporting (digit count for arithmetic);
* ``max_new_tokens(example)`` -> a generation budget large enough for a full rationale;
* ``stop()`` -> where a completion ends (`selftaught.tasks.stops.Stop`): generation stops there and
  the stored text is cut there.

The built-in tasks also describe themselves (`TaskExtras`, optional for a custom task: callers fall
back when it is missing): ``answer_rule()`` and ``description()`` for model and dataset cards, and
``embedded_base``, which embedded starting model M0 ``model.name_or_path=embedded`` pretrains for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from selftaught.tasks.stops import Stop


@dataclass(frozen=True)
class Example:
    """One (question, answer) pair. ``id`` is unique within a split; ``meta`` is task-specific."""

    id: str
    question: str
    answer: str
    meta: tuple = ()


@runtime_checkable
class Task(Protocol):
    name: str

    def load(self, split: str) -> list[Example]: ...

    def prompt(self, example: Example, hint: bool = False, few_shot: bool = True) -> str: ...

    def extract_answer(self, completion: str, example: Example | None = None) -> str | None: ...

    def check(self, predicted: str | None, example: Example) -> bool: ...

    def verify_rationale(self, example: Example, completion: str) -> str | None: ...

    def direct_completion(self, example: Example) -> str: ...

    def bucket(self, example: Example) -> str: ...

    def max_new_tokens(self, example: Example) -> int: ...

    def stop(self) -> Stop: ...


# which embedded M0 a task can start from (training builds it): short sums, or GSM8K-style text
EMBEDDED_ARITHMETIC, EMBEDDED_TEXT = "arithmetic", "text"


class TaskExtras(Protocol):
    """What a task may say about itself beyond `Task` (not required: a custom task can omit any of it)."""

    embedded_base: str | None  # EMBEDDED_ARITHMETIC, EMBEDDED_TEXT, or None: no embedded M0 for this task

    def answer_rule(self) -> str:
        """How ``extract_answer`` reads the answer out of a completion, in words (a card's sentence)."""
        ...

    def description(self) -> str:
        """The task and its data in one line, for cards."""
        ...


def embedded_base(task: Task) -> str | None:
    """The embedded M0 ``task`` starts from, if any (custom tasks without ``embedded_base``: none)."""
    return getattr(task, "embedded_base", None)


class TaskDataError(ValueError):
    """A dataset or few-shot file the task cannot use; the message names file, line and field."""
