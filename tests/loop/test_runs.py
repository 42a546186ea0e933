"""Run directory safety: atomic writes, the lock, config changes on resume, chunked resume, disk full."""

from __future__ import annotations

import errno
import os
import subprocess
import sys

import pytest

from selftaught import rundir
from selftaught.common import atomic
from selftaught.config import ConfigError, config_from_dict
from selftaught.loop import prepare_run_dir, run_star
from tests.conftest import tiny_run_config

pytestmark = pytest.mark.slow  # whole STaR runs: seconds to minutes each


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "x.json"
    atomic.atomic_write_json(target, {"v": 1})

    def full_disk(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError):
        atomic.atomic_write_json(target, {"v": 2})
    assert rundir.read_json(target) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]  # no temp file left behind


def test_lock_refuses_a_live_holder_and_is_free_once_it_dies(tmp_path):
    lock = rundir.RunLock(tmp_path)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from selftaught.rundir.lock import RunLock; RunLock({str(tmp_path)!r}).acquire(); input()",
        ],
        stdin=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        while not lock.path.exists() or not lock.path.read_text().strip():
            assert holder.poll() is None
        with pytest.raises(rundir.RunInUse, match=f"process {holder.pid}"):
            lock.acquire()
    finally:
        holder.kill()  # SIGKILL: no cleanup ran, the file is still there; the kernel dropped the lock
        holder.wait()
    assert lock.path.read_text().split()[0] == str(holder.pid)
    lock.acquire()
    assert lock.path.read_text().split()[0] == str(os.getpid())
    lock.release()
    assert not lock.path.exists()


def test_resume_with_changed_config_is_refused_unless_forced(tmp_path):
    config = tiny_run_config(tmp_path)
    prepare_run_dir(config, tmp_path / "run", resume=False)
    rundir.RunLock(tmp_path / "run").release()
    changed = config_from_dict({**config.to_dict(), "seed": 5, "loop": {**config.to_dict()["loop"], "iterations": 4}})
    with pytest.raises(ConfigError, match=r"loop.iterations: 1 -> 4; seed: 0 -> 5"):
        prepare_run_dir(changed, tmp_path / "run", resume=True)
    rundir.RunLock(tmp_path / "run").release()
    used, _ = prepare_run_dir(changed, tmp_path / "run", resume=True, force=True)
    assert used.seed == 5
    rundir.RunLock(tmp_path / "run").release()
    saved, _ = prepare_run_dir(None, tmp_path / "run", resume=True)
    assert saved == changed


def test_second_concurrent_run_is_refused_and_first_unharmed(tmp_path):
    root = tmp_path / "run"
    config = tiny_run_config(tmp_path)
    prepare_run_dir(config, root, resume=False)  # this process now holds the lock, as a running job would
    before = sorted(p.name for p in root.iterdir())
    with pytest.raises(rundir.RunInUse, match="in use by process"):
        prepare_run_dir(None, root, resume=True)
    assert sorted(p.name for p in root.iterdir()) == before
    rundir.RunLock(root).release()


def test_disk_full_mid_run_then_resume(tmp_path, monkeypatch):
    config = tiny_run_config(tmp_path, loop={"iterations": 1, "filter": "answer"})
    real = atomic.atomic_write_jsonl

    def full_on_train_file(path, rows):
        if path.name == "train.jsonl":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, rows)

    monkeypatch.setattr(atomic, "atomic_write_jsonl", full_on_train_file)
    with pytest.raises(OSError, match="No space left"):
        run_star(config, tmp_path / "run")
    assert rundir.RunDir(tmp_path / "run").is_done(tmp_path / "run" / "iter_001", "rationalize")
    monkeypatch.setattr(atomic, "atomic_write_jsonl", real)
    summary = run_star(None, tmp_path / "run", resume=True)
    assert [r.iteration for r in summary.iterations] == [1]


def test_interrupted_generation_keeps_finished_chunks(tmp_path, monkeypatch):
    from selftaught.generation import Generator

    config = tiny_run_config(tmp_path, generation={"chunk_size": 10}, loop={"iterations": 1, "filter": "answer"})
    reference = run_star(config, tmp_path / "ref")
    calls = {"n": 0}
    real = Generator.complete

    def die_in_second_generation_chunk(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:  # calls 1-3: M0's evaluation (24 questions), 4: generation chunk 0
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Generator, "complete", die_in_second_generation_chunk)
    with pytest.raises(KeyboardInterrupt):
        run_star(config, tmp_path / "run")
    chunks = list((tmp_path / "run" / "iter_001" / ".chunks" / "generate").glob("chunk_*.jsonl"))
    assert len(chunks) == 1  # generation chunk 0 was saved before the kill
    monkeypatch.setattr(Generator, "complete", real)
    calls["n"] = 0
    resumed = run_star(None, tmp_path / "run", resume=True)
    assert rundir.read_jsonl(tmp_path / "run/iter_001/generated.jsonl") == rundir.read_jsonl(
        tmp_path / "ref/iter_001/generated.jsonl"
    )
    assert resumed.iterations[0].accuracy_by_bucket == reference.iterations[0].accuracy_by_bucket
    assert not (tmp_path / "run" / "iter_001" / ".chunks").exists()


def test_rationalize_rerun_does_not_duplicate_hinted_rows(tmp_path, monkeypatch):
    config = tiny_run_config(tmp_path, loop={"iterations": 1, "filter": "answer"})
    real_mark = rundir.RunDir.mark_done

    def die_before_marking_rationalize(self, folder, phase, seconds):
        if phase == "rationalize":
            raise KeyboardInterrupt  # the rows are written, the phase not yet recorded
        return real_mark(self, folder, phase, seconds)

    monkeypatch.setattr(rundir.RunDir, "mark_done", die_before_marking_rationalize)
    with pytest.raises(KeyboardInterrupt):
        run_star(config, tmp_path / "run")
    monkeypatch.setattr(rundir.RunDir, "mark_done", real_mark)
    run_star(None, tmp_path / "run", resume=True)
    rows = rundir.read_jsonl(tmp_path / "run" / "iter_001" / "generated.jsonl")
    keys = [(r["id"], r["hinted"], r["sample"]) for r in rows]
    assert len(keys) == len(set(keys))


def test_each_phase_records_its_own_peak_memory(tmp_path):
    """A phase that allocates ~200 MiB records a peak at least that much above the next phase's, which
    allocates nothing: the high-water mark is reset between phases, not carried over."""
    from selftaught.common.memory import reset_peak_rss

    if not reset_peak_rss():
        pytest.skip("this kernel does not let a process reset its peak RSS (/proc/self/clear_refs)")
    run, folder = rundir.RunDir(tmp_path), tmp_path / "iter_001"
    folder.mkdir()

    def allocate():
        block = bytearray(200 << 20)
        block[::4096] = b"x" * len(block[::4096])  # touch every page, so it is resident
        del block

    run.phase(folder, "generate", allocate)
    run.phase(folder, "train", lambda: None)
    peaks = run.peak_memory(folder)
    assert set(peaks) == {"generate", "train"}
    assert peaks["generate"] >= peaks["train"] + 150
    (folder / "memory.json").write_text('{"train": "x"}')
    with pytest.raises(rundir.RunDirError, match=r"memory.json: phase 'train' has no number of MiB"):
        run.peak_memory(folder)
