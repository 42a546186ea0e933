"""Hostile input and SIGKILL: the malformed-input table and a few fault-injection trials."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # whole STaR runs: seconds to minutes each

BENCH = Path(__file__).resolve().parents[2] / "checks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


malformed = _load("malformed_inputs")


@pytest.mark.parametrize("name", list(malformed.CASES))
def test_malformed_input_gets_one_line_and_exit_2(name):
    result = malformed.run_case(name, malformed.CASES[name])
    assert result["ok"], result
    assert len(malformed.CASES) >= 50


def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path):
    fault = _load("fault_injection")
    reference, windows = fault.reference_timeline(tmp_path)
    assert {"base-train", "iter1-generate", "iter1-train", "iter2-evaluate"} <= set(windows)
    rng = random.Random(1)
    for k, phase in enumerate(["iter1-generate", "iter1-train", "iter2-rationalize"]):
        low, high = windows[phase]
        result = fault.trial(tmp_path, k, phase, rng.uniform(0, 0.9 * (high - low)), reference, iterations=2)
        assert result["ok"], result
