"""The verifier's training data as pure functions: (right, wrong) pairs of the generator's own samples.

V-STaR (Hosseini et al. 2024, Sec. 3) pairs every correct with every incorrect solution of the same
question and accumulates the pairs over iterations. Here:

* only plain samples count: a hinted (rationalization) sample saw the answer, and the verifier scores
  what the generator writes without it;
* a sample is *right* when it is ``verified``: the right answer and no failed step check. A right answer
  reached through a wrong step is wrong reasoning, so it is a *wrong* sample, exactly what a verifier
  must learn to rank low;
* a pair never crosses questions, and each (question, right text, wrong text) appears once however
  many times the texts were sampled, in one iteration or several.

`rpo_pairs` is the generator's counterpart for ``train.objective=rpo`` (iterative reasoning preference
optimisation, Pang et al. 2024): the iteration's training records against the wrong samples of their question.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from selftaught.samples import PAIR_KEYS, Pair, Record, Sample, read_pairs, write_rows
from selftaught.star import is_kept

__all__ = ["PAIR_KEYS", "Pair", "build_pairs", "pair_counts", "read_pairs", "rpo_pairs", "write_pairs"]


def is_right(row: Sample) -> bool:
    """A right solution: right answer and no faulty step (``verified`` implies ``correct``)."""
    return bool(row.correct) and bool(row.verified)


def split_by_question(
    rows: list[Sample], right: Callable[[Sample], bool] = is_right
) -> dict[str, tuple[list[str], list[str]]]:
    """Per question id: (distinct right texts, distinct wrong texts) of its plain samples, in sample order;
    ``right`` says which sample is right (default: `is_right`).

    >>> rows = [Sample("q", False, 0, "a", "1", True, True, None), Sample("q", False, 1, "b", "1", True, False, "x"),
    ...         Sample("q", True, 0, "c", "1", True, True, None), Sample("q", False, 2, "a", "1", True, True, None)]
    >>> split_by_question(rows)
    {'q': (['a'], ['b'])}
    """
    out: dict[str, tuple[list[str], list[str]]] = {}
    for row in rows:
        if row.hinted:
            continue
        good, bad = out.setdefault(row.id, ([], []))
        bucket = good if right(row) else bad
        if row.text not in bucket:
            bucket.append(row.text)
    return out


def build_pairs(rows_by_iteration: dict[int, list[Sample]]) -> list[Pair]:
    """Every (right, wrong) pair of the same question over the given iterations, each pair once.

    Iterations are taken in order, so a pair seen in several is credited to the first. A text counts as
    right for a question if any iteration's sample of it was right (a grader is deterministic, so this only
    matters for hand-written rows), and a text never pairs with itself.
    """
    pairs: list[Pair] = []
    seen: set[tuple[str, str, str]] = set()
    for iteration in sorted(rows_by_iteration):
        for qid, (right, wrong) in split_by_question(rows_by_iteration[iteration]).items():
            for chosen in right:
                for rejected in wrong:
                    key = (qid, chosen, rejected)
                    if chosen == rejected or key in seen:
                        continue
                    seen.add(key)
                    pairs.append(Pair(qid, chosen, rejected, iteration))
    return pairs


def rpo_pairs(records: list[Record], rows: list[Sample], filter_mode: str, iteration: int) -> list[Pair]:
    """The generator's pairs for ``train.objective=rpo``: each training record (chosen: a kept plain sample,
    or a rationalization stored unhinted) with each distinct plain sample of its question that the loop's
    filter did not keep (rejected: a wrong answer or, under ``answer+rationale``, a failed step check).

    Hinted samples are never rejected (they saw the answer); a rationalized record's natural rejected is the
    wrong first attempt at its question. A record whose question has no wrong sample gets no pair.

    >>> rows = [Sample("q", False, 0, "a", "1", True, True, None), Sample("q", False, 1, "b", "2", False, False, None),
    ...         Sample("r", False, 0, "c", "1", True, True, None)]
    >>> rpo_pairs([Record("q", "Q", "a", "generated"), Record("r", "R", "c", "generated")], rows, "answer", 1)
    [Pair(id='q', chosen='a', rejected='b', iteration=1)]
    """
    by_question = split_by_question(rows, lambda row: is_kept(row, filter_mode))
    wrong = {qid: bad for qid, (_, bad) in by_question.items()}
    return [
        Pair(record.id, record.completion, rejected, iteration)
        for record in records
        for rejected in wrong.get(record.id, [])
        if rejected != record.completion
    ]


def pair_counts(pairs: list[Pair]) -> dict:
    """How many pairs, over how many questions, from which iterations (for metrics and the model card)."""
    by_iteration: dict[int, int] = {}
    for pair in pairs:
        by_iteration[pair.iteration] = by_iteration.get(pair.iteration, 0) + 1
    return {
        "num_pairs": len(pairs),
        "num_questions": len({pair.id for pair in pairs}),
        "pairs_by_iteration": {str(n): by_iteration[n] for n in sorted(by_iteration)},
    }


def write_pairs(path: str | Path, pairs: list[Pair]) -> None:
    write_rows(path, pairs)
