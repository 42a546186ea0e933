"""STaR's bookkeeping as pure functions: grade samples, pick what to rationalize, build training data.

No model here, so each rule of the paper is testable on hand-written rows:

* a sample is *kept* when its extracted answer is right (and, with ``filter="answer+rationale"``,
  when ``task.verify_rationale`` finds no faulty step);
* questions with no kept plain sample are retried with the hint (rationalization);
* training examples always use the *unhinted* prompt: a rationalized completion is stored as if the
  model had produced it without seeing the answer;
* a completion the generation budget cut (`Completion.truncated`) gives no answer read from the number
  it ends with, which may be the start of a longer one.
"""

from __future__ import annotations

import re

from selftaught.samples import Record, Sample, is_truncated
from selftaught.tasks.base import Example, Task

FILTERS = ("answer", "answer+rationale")
_CUT_NUMBER_RE = re.compile(r"\d[.,/]?\Z")  # a text ending where a number may go on: "12", "12.", "1/"


def extract(task: Task, example: Example, completion: str) -> str | None:
    """The answer ``task`` reads from ``completion``; None when the budget cut it (`is_truncated`) right
    after a digit and the answer is read from that last number: "#### 12" may be the start of "#### 125".
    Whether it is: one more digit there changes the answer, whatever the task's extractor.

    >>> from selftaught.samples import Completion
    >>> from selftaught.tasks.gsm8k import GSM8KTask
    >>> from selftaught.config import DataConfig
    >>> task, example = GSM8KTask(DataConfig()), Example("e", "How many?", "12")
    >>> text = "5 + 7 = 12\\n#### 12"
    >>> extract(task, example, text), extract(task, example, Completion(text, truncated=True))
    ('12', None)
    >>> extract(task, example, Completion("#### 12\\nThen she buys 3", True))  # not read from the cut number
    '12'
    """
    answer = task.extract_answer(completion, example)
    if answer is not None and is_truncated(completion) and _CUT_NUMBER_RE.search(completion):
        if task.extract_answer(completion + "1", example) != answer:
            return None
    return answer


def grade(task: Task, example: Example, completion: str, hinted: bool, sample: int = 0) -> Sample:
    """One row of ``generated.jsonl``; ``completion`` may be a `Completion` that the budget cut."""
    answer = extract(task, example, completion)
    correct = task.check(answer, example)
    problem = task.verify_rationale(example, completion) if correct else None
    truncated = is_truncated(completion)
    return Sample(
        example.id, hinted, sample, str(completion), answer, correct, correct and problem is None, problem, truncated
    )


def steps_checked(task: Task, example: Example, completions: list[str]) -> list[bool]:
    """Whether each completion's reasoning steps check (`Task.verify_rationale`), right answer or not.

    The check reads the question and the completion, never the gold answer, so best of k can vote with
    only the samples that pass it (checked_maj@k).
    """
    return [task.verify_rationale(example, text) is None for text in completions]


def is_kept(row: Sample, filter_mode: str) -> bool:
    if filter_mode not in FILTERS:
        raise ValueError(f"unknown filter {filter_mode!r}; choose one of {FILTERS}")
    return bool(row.correct) and (filter_mode == "answer" or bool(row.verified))


def needs_rationalization(examples: list[Example], rows: list[Sample], filter_mode: str) -> list[Example]:
    """Examples none of whose plain samples was kept, in dataset order."""
    solved = {row.id for row in rows if not row.hinted and is_kept(row, filter_mode)}
    return [ex for ex in examples if ex.id not in solved]


def training_records(
    task: Task, examples: list[Example], rows: list[Sample], filter_mode: str, few_shot: bool = False
) -> list[Record]:
    """Kept samples as (unhinted prompt, completion) records, duplicates removed.

    Plain samples come first; a hinted sample counts only for a question with no kept plain one.
    ``few_shot`` keeps the few-shot prefix in the stored prompt (the paper found it helps).
    """
    by_id = {ex.id: ex for ex in examples}
    solved = {row.id for row in rows if not row.hinted and is_kept(row, filter_mode)}
    records, seen = [], set()
    for row in sorted(rows, key=lambda r: r.hinted):  # stable: plain rows first
        if not is_kept(row, filter_mode) or (row.hinted and row.id in solved):
            continue
        if (row.id, row.text) in seen:
            continue
        seen.add((row.id, row.text))
        example = by_id[row.id]
        prompt = task.prompt(example, hint=False, few_shot=few_shot)
        records.append(Record(example.id, prompt, row.text, "rationalized" if row.hinted else "generated"))
    return records


def direct_records(task: Task, examples: list[Example], few_shot: bool = False) -> list[Record]:
    """The direct fine-tuning baseline: question -> answer, no rationale."""
    return [Record(ex.id, task.prompt(ex, few_shot=few_shot), task.direct_completion(ex), "direct") for ex in examples]


def accuracy_by_bucket(task: Task, examples: list[Example], rows: list[Sample]) -> tuple[float, dict]:
    """Overall accuracy and accuracy per bucket from one graded row per example."""
    correct = {row.id: bool(row.correct) for row in rows}
    totals: dict[str, list[int]] = {}
    for ex in examples:
        hit_total = totals.setdefault(task.bucket(ex), [0, 0])
        hit_total[0] += correct.get(ex.id, False)
        hit_total[1] += 1
    overall = sum(correct.get(ex.id, False) for ex in examples) / max(len(examples), 1)
    order = sorted(totals, key=lambda b: (len(b), b))  # "2" before "10"
    return overall, {b: totals[b][0] / totals[b][1] for b in order}
