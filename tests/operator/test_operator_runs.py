"""Issue 12 on real runs: SIGTERM and a double Ctrl-C, a real full disk, divergence, damaged weights.

One M0 and one uninterrupted reference run are built per module; every interrupted run must resume to
exactly the reference's training data and accuracies.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from selftaught import rundir
from selftaught.config import ConfigError, config_from_dict
from selftaught.loop import run_star
from selftaught.training.finite import NonFiniteError
from tests.conftest import tiny_run_config
from tests.operator_scripts import SLOW_CHECKPOINT

pytestmark = pytest.mark.slow  # whole STaR runs: seconds to minutes each

SETTINGS = {"generation": {"chunk_size": 8}, "train": {"save_every_steps": 4}}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """(work folder, config, recipe path, reference run directory) sharing one M0 cache."""
    work = tmp_path_factory.mktemp("operator")
    config = tiny_run_config(work, **SETTINGS)
    recipe = work / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(config.to_dict()))
    run_star(config, work / "reference")
    return work, config, recipe, work / "reference"


def same_results(run: Path, ref: Path) -> bool:
    summary = [rundir.read_json(p / "summary.json") for p in (run, ref)]
    accuracies = [
        [s["base"]["accuracy_by_bucket"]] + [r["accuracy_by_bucket"] for r in s["iterations"]] for s in summary
    ]
    train = [(p / "iter_001" / "train.jsonl").read_text() for p in (run, ref)]
    return accuracies[0] == accuracies[1] and train[0] == train[1]


def cli(*args, cwd, wrapper: str | None = None, during=None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", wrapper] if wrapper else [sys.executable, "-m", "selftaught.cli"]
    # as many threads as the in-process reference (conftest), so that float results compare exactly
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "COLUMNS": "200", "OMP_NUM_THREADS": "2"}
    proc = subprocess.Popen(
        [*command, *map(str, args)], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    if during:
        during(proc)
    out, err = proc.communicate(timeout=600)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def signal_when(ready, *signums: int):
    def send(proc):
        while proc.poll() is None and not ready():
            time.sleep(0.01)
        for k, signum in enumerate(signums):
            time.sleep(0.2 if k else 0)
            proc.send_signal(signum)

    return send


def test_sigterm_then_a_double_ctrl_c_in_a_checkpoint_write_then_resume(reference):
    work, _, recipe, ref = reference
    run = work / "signals"
    chunks = run / "iter_001" / ".chunks"
    stopped = cli("run", recipe, "--out", run, "--quiet", cwd=work, during=signal_when(chunks.exists, signal.SIGTERM))
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr
    assert (
        stopped.stderr.strip()
        == f"interrupted (SIGTERM): finished work is saved; resume with: selftaught run --resume {run}"
    )
    assert not (run / "run.lock").exists()  # released, not left behind

    marker = work / "writing-checkpoint"
    twice = signal_when(marker.exists, signal.SIGINT, signal.SIGINT)
    again = cli(marker, "run", "--resume", run, "--quiet", cwd=work, wrapper=SLOW_CHECKPOINT, during=twice)
    assert again.returncode == 128 + signal.SIGINT, again.stderr
    assert again.stderr.strip().startswith("interrupted (SIGINT)") and len(again.stderr.strip().splitlines()) == 1
    assert not (run / "iter_001" / "checkpoint").exists()  # the write was cut short: absent, not half

    run_star(None, run, resume=True)
    assert same_results(run, ref)
    assert not [p for p in run.rglob("*") if p.name.endswith(".tmp")]


def test_diverging_training_stops_clearly_then_resumes_with_a_lower_rate(reference):
    work, config, _, ref = reference
    data = config.to_dict()
    data["train"]["learning_rate"] = 1e30
    with pytest.raises(NonFiniteError, match=r"iter 1: train: .* training diverged"):
        run_star(config_from_dict(data), work / "diverged")
    assert not (work / "diverged" / "iter_001" / ".trainer").exists()  # no checkpoint of the diverged weights
    run_star(config, work / "diverged", resume=True, force=True)  # allowed: no training was kept
    assert same_results(work / "diverged", ref)


def test_damaged_checkpoint_weights_are_one_line(reference, tmp_path):
    from selftaught.models import load_model

    _, _, _, ref = reference
    import shutil

    checkpoint = tmp_path / "checkpoint"
    shutil.copytree(ref / "iter_001" / "checkpoint", checkpoint)
    weights = checkpoint / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(ConfigError, match="cannot load model .*checkpoint"):
        load_model(checkpoint)
    from safetensors.torch import load_file, save_file

    state = load_file(ref / "iter_001" / "checkpoint" / "model.safetensors")
    next(iter(state.values())).fill_(float("nan"))
    save_file(state, weights, metadata={"format": "pt"})
    with pytest.raises(ConfigError, match="holds NaN or infinite values"):
        load_model(checkpoint)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_real_full_disk_is_one_line_and_resumes_identically(reference):
    work, _, recipe, ref = reference
    final_kb = sum(p.stat().st_size for p in ref.rglob("*") if p.is_file()) // 1024
    mnt = work / "tmpfs"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={final_kb // 3}k", "tmpfs", mnt], check=True)
    try:
        full = cli("run", recipe, "--out", mnt / "run", "--quiet", cwd=work)
        assert full.returncode == 2, full.stderr
        assert full.stderr.strip() == (
            f"error: no space left on device while writing {mnt / 'run'}: free some space; "
            f"then: selftaught run --resume {mnt / 'run'}"
        )
        subprocess.run(["mount", "-o", f"remount,size={final_kb * 8}k", mnt], check=True)  # space freed
        resumed = cli("run", "--resume", mnt / "run", "--quiet", cwd=work)
        assert resumed.returncode == 0, resumed.stderr
        assert same_results(mnt / "run", ref)
    finally:
        subprocess.run(["umount", "-l", mnt])
