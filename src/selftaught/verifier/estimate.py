"""Best-of-k estimators over n >= k scored samples per question, as pure functions.

* ``verifier_at_k``: V-STaR's Verifier@k (Hosseini et al. 2024, Sec. 4, following Chen et al.'s unbiased
  pass@k): the expected correctness of the top-scored sample of a uniformly random k-subset of the n
  samples. With the samples sorted by score, the one of rank i (0 = best) is the subset's top exactly when
  it is drawn and none of the i better ones is: C(n-i-1, k-1) / C(n, k) of the subsets. Ties are broken
  uniformly at random among the subset's tied top samples, so a tied group of m samples, c of them right,
  contributes c/m times the chance that the subset's top group is that group,
  (C(n-a, k) - C(n-a-m, k)) / C(n, k), a = samples scored strictly higher (m = 1 gives the formula above).
* ``pass_at_k``: Chen et al. (2021)'s unbiased pass@k, 1 - C(n-c, k) / C(n, k).
* ``majority_at_k``: majority voting over a random k-subset, averaged over subsets (exact by enumeration
  when there are few subsets, else over a fixed, seeded sample of them). With ``checked``, only the
  subset's samples whose reasoning steps check vote (all of them when none does): the task's own step
  check as a verifier that needs no training and no gold answer.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from math import comb


def _check(n: int, k: int) -> None:
    if not 1 <= k <= n:
        raise ValueError(f"k must be in 1..n (n = {n} samples), got k = {k}")


def verifier_at_k(scores: list[float], correct: list[bool], k: int) -> float:
    """Expected correctness of the best-scored of k samples drawn without replacement from these n.

    >>> verifier_at_k([0.9, 0.1, 0.5], [False, True, True], 1)  # k = 1: the mean correctness
    0.6666666666666666
    >>> verifier_at_k([0.9, 0.1, 0.5], [False, True, True], 3)  # k = n: the top sample
    0.0
    >>> verifier_at_k([1.0, 1.0], [True, False], 2)  # a tie: either one, at random
    0.5
    """
    n = len(scores)
    if len(correct) != n:
        raise ValueError(f"{n} scores but {len(correct)} correctness flags")
    _check(n, k)
    total = comb(n, k)
    order = sorted(range(n), key=lambda i: -scores[i])
    expected, above = 0.0, 0
    for _, group in itertools.groupby(order, key=lambda i: scores[i]):
        members = list(group)
        m, c = len(members), sum(bool(correct[i]) for i in members)
        p_top = (comb(n - above, k) - comb(n - above - m, k)) / total
        expected += p_top * c / m
        above += m
    return expected


def pass_at_k(n: int, c: int, k: int) -> float:
    """Chance that at least one of k samples (of n, c right) is right.

    >>> pass_at_k(4, 1, 2)
    0.5
    """
    _check(n, k)
    return 1.0 - comb(n - c, k) / comb(n, k)


def majority_at_k(
    answers: list[str | None],
    right: set[str],
    k: int,
    max_subsets: int = 512,
    seed: int = 0,
    checked: list[bool] | None = None,
) -> float:
    """Chance that the majority answer of k random samples is right (``right``: the answers graded right).

    A tie between top answers is broken uniformly at random (in expectation). Exact (every k-subset) when
    C(n, k) <= ``max_subsets``; otherwise the mean over ``max_subsets`` subsets drawn with ``seed``.

    >>> majority_at_k(["3", "3", "4"], {"3"}, 3)
    1.0
    >>> majority_at_k(["3", "4"], {"3"}, 2)  # a tie: either answer, at random
    0.5
    >>> majority_at_k(["3", "4", "4"], {"3"}, 3, checked=[True, False, False])  # only "3" checks
    1.0
    """
    n = len(answers)
    _check(n, k)
    if comb(n, k) <= max_subsets:
        subsets = list(itertools.combinations(range(n), k))
    else:
        rng = random.Random(seed)
        subsets = [tuple(rng.sample(range(n), k)) for _ in range(max_subsets)]
    if checked is not None and len(checked) != n:
        raise ValueError(f"{n} answers but {len(checked)} step-check flags")
    return sum(_majority_right(answers, _voters(subset, checked), right) for subset in subsets) / len(subsets)


def _voters(subset: tuple[int, ...], checked: list[bool] | None) -> tuple[int, ...]:
    """The members of ``subset`` that vote: those whose steps check, or all when none does (or no check)."""
    if checked is None:
        return subset
    passing = tuple(i for i in subset if checked[i])
    return passing or subset


def _majority_right(answers: list[str | None], subset: tuple[int, ...], right: set[str]) -> float:
    """The chance that a vote over ``subset`` is right, ties between top answers broken uniformly."""
    counts = Counter(answers[i] for i in subset if answers[i] is not None)
    if not counts:
        return 0.0
    best = max(counts.values())
    top = [a for a, count in counts.items() if count == best]
    return sum(a in right for a in top) / len(top)
