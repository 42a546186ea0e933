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
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

from selftaught import rundir
from selftaught.common import atomic
from selftaught.samples import Sample


@dataclass(frozen=True)
class Pair:
    """One preference pair: two completions of question ``id``, the first right, the second wrong."""

    id: str
    chosen: str  # a right solution (answer right, every step check passed)
    rejected: str  # a wrong one (wrong or no answer, or a failed step check)
    iteration: int  # the first iteration whose samples gave this pair

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, row: dict) -> Pair:
        return cls(**{name: row[name] for name in PAIR_KEYS})


PAIR_KEYS = tuple(f.name for f in fields(Pair))


def is_right(row: Sample) -> bool:
    """A right solution: right answer and no faulty step (``verified`` implies ``correct``)."""
    return bool(row.correct) and bool(row.verified)


def split_by_question(rows: list[Sample]) -> dict[str, tuple[list[str], list[str]]]:
    """Per question id: (distinct right texts, distinct wrong texts) of its plain samples, in sample order.

    >>> rows = [Sample("q", False, 0, "a", "1", True, True, None), Sample("q", False, 1, "b", "1", True, False, "x"),
    ...         Sample("q", True, 0, "c", "1", True, True, None), Sample("q", False, 2, "a", "1", True, True, None)]
    >>> split_by_question(rows)
    {'q': (['a'], ['b'])}
    """
    out: dict[str, tuple[list[str], list[str]]] = {}
    for row in rows:
        if row.hinted:
            continue
        right, wrong = out.setdefault(row.id, ([], []))
        bucket = right if is_right(row) else wrong
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
    atomic.atomic_write_jsonl(path, [pair.to_json() for pair in pairs])


def read_pairs(path: str | Path) -> list[Pair]:
    return [Pair.from_json(row) for row in rundir.read_jsonl(path, PAIR_KEYS)]
