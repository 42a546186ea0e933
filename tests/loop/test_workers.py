"""Generation over Ray workers (issue 8): same rows as one process, a killed worker retried, a killed run resumed.

One M0 and one single-process reference run are built per module; Ray starts once, locally.
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
from selftaught.loop import run_star
from tests.conftest import tiny_run_config

pytestmark = pytest.mark.slow  # whole STaR runs: seconds to minutes each

ray = pytest.importorskip("ray")

SETTINGS = {"generation": {"chunk_size": 8}, "train": {"save_every_steps": 4}}
PHASE_FILES = ("iter_001/generated.jsonl", "iter_001/train.jsonl", "iter_001/eval.jsonl", "base/eval.jsonl")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """(work folder, config, reference run directory): one process, one M0 cache shared by every run here."""
    work = tmp_path_factory.mktemp("workers")
    config = tiny_run_config(work, **SETTINGS)
    run_star(config, work / "reference")
    yield work, config, work / "reference"
    ray.shutdown()


def same_files(run: Path, ref: Path) -> list[str]:
    """The phase outputs that differ between two run directories."""
    return [name for name in PHASE_FILES if (run / name).read_bytes() != (ref / name).read_bytes()]


def test_two_workers_write_what_one_process_writes(reference):
    work, config, ref = reference
    two = tiny_run_config(work, **SETTINGS, distributed={"generation_workers": 2})
    summary = run_star(two, work / "two")
    assert same_files(work / "two", ref) == []
    assert summary.iterations[0].distributed == {"generation_workers": 2, "train_processes": 1}
    assert rundir.read_json(ref / "summary.json")["iterations"][0]["distributed"]["generation_workers"] == 1


def test_a_killed_worker_is_restarted_and_its_chunk_retried(reference):
    from selftaught.generation.sampling import Sampling
    from selftaught.generation.workers import ChunkJob, LocalWorkers, RayWorkers
    from selftaught.tasks import make_task

    work, config, ref = reference
    two = tiny_run_config(work, **SETTINGS, distributed={"generation_workers": 2})
    task = make_task(two)
    questions = task.load("train")
    jobs = [
        ChunkJob(k, [task.prompt(ex) for ex in questions[k::6]], [task.max_new_tokens(ex) for ex in questions[k::6]],
                 Sampling(num_samples=4, temperature=1.0, seed=100 + k, stop=task.stop()))
        for k in range(6)
    ]  # fmt: skip
    model = ref / "iter_001" / "checkpoint"
    pool = RayWorkers(two)
    try:
        first_pids = pool.load(model)
        results = []
        for result in pool.map(model, jobs):
            if not results:  # both workers are busy with the next chunks now: kill one mid-chunk
                os.kill(first_pids[0], signal.SIGKILL)
            results.append(result)
    finally:
        pool.release()
    expected = {r.index: r.completions for r in LocalWorkers(two).map(model, jobs)}
    assert {r.index: r.completions for r in results} == expected  # nothing lost, nothing twice
    assert len(results) == len(jobs)
    assert {r.worker_pid for r in results} - set(first_pids)  # a restarted worker finished chunks


def test_a_killed_run_resumes_to_the_same_rows(reference):
    work, config, ref = reference
    two = tiny_run_config(work, **SETTINGS, distributed={"generation_workers": 2})
    recipe = work / "two.yaml"
    recipe.write_text(yaml.safe_dump(two.to_dict()))
    run = work / "killed"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "2"}
    command = [sys.executable, "-m", "selftaught.cli", "run", str(recipe), "--out", str(run)]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    chunks = run / "iter_001" / ".chunks" / "generate"
    deadline = time.monotonic() + 300
    while proc.poll() is None and not list(chunks.glob("chunk_*.jsonl")) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.kill()  # the driver dies mid-phase, with Ray and its workers running
    proc.wait()
    assert list(chunks.glob("chunk_*.jsonl")), "the run ended before the generate phase wrote a chunk"
    resume = [sys.executable, "-m", "selftaught.cli", "run", "--resume", str(run)]
    resumed = subprocess.run(resume, env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert same_files(run, ref) == []


CLUSTER = """\
import sys, time, ray
ray.init(num_cpus=2, include_dashboard=False)  # a cluster of its own; it dies with this process
print(ray.get_runtime_context().gcs_address, flush=True)
time.sleep(600)
"""


def test_ray_address_joins_a_running_cluster(reference):
    from selftaught.generation.sampling import Sampling
    from selftaught.generation.workers import ChunkJob, LocalWorkers, RayWorkers
    from selftaught.tasks import make_task

    work, config, ref = reference
    ray.shutdown()  # this module's own local Ray; the workers must join the other cluster instead
    cluster = subprocess.Popen([sys.executable, "-c", CLUSTER], stdout=subprocess.PIPE, text=True)
    try:
        address = cluster.stdout.readline().strip()
        joined = tiny_run_config(work, **SETTINGS, distributed={"generation_workers": 2, "ray_address": address})
        task = make_task(joined)
        part = task.load("test")[:8]
        prompts, budgets = [task.prompt(ex) for ex in part], [task.max_new_tokens(ex) for ex in part]
        jobs = [ChunkJob(0, prompts, budgets, Sampling())]
        pool = RayWorkers(joined)
        assert ray.get_runtime_context().gcs_address == address
        model = ref / "iter_001" / "checkpoint"
        got = [r.completions for r in pool.map(model, jobs)]
        assert got == [r.completions for r in LocalWorkers(joined).map(model, jobs)]
        pool.release()
    finally:
        ray.shutdown()
        cluster.kill()
        cluster.wait()
