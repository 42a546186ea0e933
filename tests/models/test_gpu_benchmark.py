"""benchmarks/gpu.py, the one-call GPU table, at its --smoke sizes on CPU: every row measured, the vLLM
row marked "not installed" where vLLM is absent, the table legible at 80 columns, and the wall-clock
budget skipping rows while still writing the JSON."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "gpu.py"
SHAPES = ("qwen2.5-0.5b", "gemma3-270m")


def run_script(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    env = os.environ | {"OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=timeout
    )


@pytest.mark.slow  # ~15-20 s on 2 shared cores: two tiny models built, generated from and trained
def test_smoke_measures_every_row(tmp_path):
    out = tmp_path / "gpu.json"
    done = run_script("--smoke", "--device", "cpu", "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    payload = json.loads(out.read_text())
    assert payload["complete"] and payload["skipped"] == []
    assert payload["environment"]["device"] == "cpu" and payload["peak_bf16_tflops"] > 0
    assert set(payload["shapes"]) == set(SHAPES)
    rows = {(r["shape"], r.get("variant") or r.get("mode")): r for r in payload["rows"]}
    assert len(rows) == len(payload["rows"]) == 2 * (4 + 2)
    vllm_absent = importlib.util.find_spec("vllm") is None
    for shape in SHAPES:
        for variant in ("generate", "hf", "sampler"):
            row = rows[shape, variant]
            assert row["status"] == "ok", row.get("traceback", row["status"])
            assert row["tokens"] > 0 and row["seconds"] > 0 and row["tokens_per_second"] > 0
            assert row["x_generate"] > 0 and row["dtype"] == "bfloat16"
        if vllm_absent:
            assert rows[shape, "vllm"]["status"] == "not installed"
        for mode in ("lora", "full"):
            row = rows[shape, mode]
            assert row["status"] == "ok", row.get("traceback", row["status"])
            assert row["tokens"] > 0 and row["tokens_per_second"] > 0 and 0 < row["mfu_measured"]
            assert row["trainable"] < row["parameters"] if mode == "lora" else row["trainable"] == row["parameters"]
    for row in payload["rows"]:
        assert {"device_name", "torch", "transformers", "vllm"} <= set(row)
    table = done.stdout[done.stdout.index("GPU table") :]
    assert "not installed" in table or not vllm_absent
    assert max(len(line) for line in table.splitlines()) <= 80, table


def test_budget_skips_rows_and_still_writes_json(tmp_path):
    out = tmp_path / "gpu.json"
    done = run_script("--smoke", "--device", "cpu", "--budget-s", "0", "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    payload = json.loads(out.read_text())
    assert not payload["complete"] and payload["peak_bf16_tflops"] is None
    assert len(payload["rows"]) == 2 * (4 + 2)
    assert all(r["status"] == "skipped (budget)" for r in payload["rows"])
    assert "INCOMPLETE" in done.stdout
