"""What a run measured, typed: one `IterationMetrics` per ``metrics.json``, one `Summary` per ``summary.json``.

These two classes are the only code that knows the files' keys: everything else reads attributes.
Unknown keys (a newer or older selftaught wrote them) are kept in ``extra`` and written back as they
were, so reading and rewriting a file never drops what another version recorded.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

from selftaught.rundir.files import damaged

COUNTS = (
    "num_questions",
    "num_kept",
    "num_rationalized",
    "num_train_examples",
    "num_kept_unverified",
    "num_rejected",
    "train_steps",
    "num_pairs",
    "num_nll_only",
)


def _fraction(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1


def finite_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class IterationMetrics:
    """One evaluation: iteration 0 is the starting model M0; later ones add what the iteration trained on."""

    iteration: int
    accuracy: float  # greedy accuracy on the test set, a fraction
    accuracy_by_bucket: dict[str, float]  # the same per bucket (digit count, step count, ...)
    num_questions: int | None = None  # training questions the iteration generated for
    num_kept: int | None = None  # plain samples kept (right answer, steps checked)
    num_rationalized: int | None = None  # hinted samples kept, stored without the hint
    num_train_examples: int | None = None
    num_kept_unverified: int | None = None  # right answer, failed step check
    num_rejected: int | None = None
    train_steps: int | None = None
    train_objective: str | None = None  # train.objective when not the paper's sft (absent: sft): rpo
    num_pairs: int | None = None  # rpo: (kept, wrong) pairs of the same question trained on
    num_nll_only: int | None = None  # rpo: kept records whose question had no wrong sample (NLL only)
    distributed: dict | None = None  # the process layout training actually used
    seconds: dict[str, float] | None = None  # per finished phase
    peak_rss_mib: dict[str, float] | None = None  # per phase, where measurable
    extra: dict = field(default_factory=dict)  # keys this version does not know, kept as they were

    @classmethod
    def from_json(cls, row, where: Path, fix: str = "") -> IterationMetrics:
        """The metrics in ``row`` (read from ``where``); anything that is not an evaluation is damage."""
        ok = (
            isinstance(row, dict)
            and isinstance(row.get("iteration"), int)
            and _fraction(row.get("accuracy"))
            and isinstance(row.get("accuracy_by_bucket"), dict)
            and all(_fraction(v) for v in row["accuracy_by_bucket"].values())
        )
        if not ok:
            raise damaged(where, "not an evaluation result (iteration, accuracy, accuracy_by_bucket)", fix)
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        for name in ("seconds", "peak_rss_mib"):
            values = row.get(name)
            if values is not None and not (isinstance(values, dict) and all(map(finite_number, values.values()))):
                raise damaged(where, f"{name} is not a number per phase", fix)
        values = {k: v for k, v in row.items() if k in known}
        return cls(**values, extra={k: v for k, v in row.items() if k not in known})

    def to_json(self) -> dict:
        row = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        return {**{k: v for k, v in row.items() if v is not None}, **self.extra}

    def counts(self) -> dict[str, int]:
        """The iteration's sample counts that were recorded (none for M0)."""
        return {name: getattr(self, name) for name in COUNTS if getattr(self, name) is not None}


@dataclass
class Summary:
    """A run: what it was, M0's metrics, one row per finished iteration, and how it ended."""

    iterations: list[IterationMetrics] = field(default_factory=list)
    base: IterationMetrics | None = None
    task: str | None = None
    mode: str | None = None  # star | direct
    base_model: str | None = None
    versions: dict[str, str] | None = None
    base_model_gguf: dict | None = None  # where M0 came from a GGUF file: the file and its digest
    stopped_early: int | None = None  # the iteration after which accuracy had saturated
    verifier: dict | None = None  # the V-STaR verifier's training result
    seconds_this_session: float | None = None
    extra: dict = field(default_factory=dict)

    ORDER = (
        "task",
        "mode",
        "base_model",
        "base_model_gguf",
        "versions",
        "base",
        "stopped_early",
        "verifier",
        "seconds_this_session",
        "iterations",
    )

    @classmethod
    def from_json(cls, data, where: Path, fix: str = "") -> Summary:
        if not isinstance(data, dict) or not isinstance(data.get("iterations"), list):
            raise damaged(where, "has no list of iterations", fix)
        rows = [IterationMetrics.from_json(row, where, fix) for row in data["iterations"]]
        base = IterationMetrics.from_json(data["base"], where, fix) if data.get("base") else None
        known = set(cls.ORDER) - {"base", "iterations"}
        values = {k: data.get(k) for k in known}
        extra = {k: v for k, v in data.items() if k not in cls.ORDER}
        return cls(**values, base=base, iterations=rows, extra=extra)

    def to_json(self) -> dict:
        out = {}
        for name in self.ORDER:
            value = getattr(self, name)
            if name == "base":
                value = value.to_json() if value is not None else None
            elif name == "iterations":
                value = [row.to_json() for row in value]
            if value is not None:
                out[name] = value
        return {**out, **self.extra}

    def rows(self) -> list[IterationMetrics]:
        """M0's row (when recorded) then each iteration's."""
        return ([self.base] if self.base is not None else []) + self.iterations

    def last_accuracy(self) -> float | None:
        return self.iterations[-1].accuracy if self.iterations else None
