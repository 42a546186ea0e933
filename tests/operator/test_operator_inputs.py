"""Issue 12 without a model: links, foreign folders, tampered files, the lock, bounded input, numbers."""

from __future__ import annotations

import errno
import multiprocessing
import os
import tracemalloc

import pytest
import yaml

from selftaught import rundir
from selftaught.common import atomic
from selftaught.config import Config, ConfigError, TrainConfig, config_from_dict, load_config
from selftaught.loop import prepare_run_dir, release_run_dir
from selftaught.rundir.interrupts import write_failure
from selftaught.samples import read_samples
from tests.conftest import tiny_run_config


def _new_run(tmp_path, **sections):
    config = tiny_run_config(tmp_path, **sections)
    _, run = prepare_run_dir(config, tmp_path / "run", resume=False)
    release_run_dir(run)
    return config, run.root


def _tree(folder) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in sorted(folder.rglob("*"))}


# ---------------------------------------------------------------------------------- numbers and YAML
@pytest.mark.parametrize(
    "override, field",
    [
        ("train.weight_decay=.nan", "train.weight_decay must be a finite number"),
        ("train.learning_rate=1.0e+400", "train.learning_rate must be a finite number"),
        ("train.learning_rate=1e400", "train.learning_rate must be a finite number"),
        ("model.lora.dropout=-.inf", "model.lora.dropout must be a finite number"),
        ("train.steps_growth=1.0e+400", "train.steps_growth must be a finite number"),
        ("train.steps_growth=1.0e+300", "exceeds 1e+09 optimizer steps"),
        ("seed=100000000000000000000000", "seed must be an integer within"),
    ],
)
def test_non_finite_and_overflowing_numbers_are_refused(override, field):
    with pytest.raises(ConfigError, match=None) as info:
        load_config(None, [override])
    assert field in str(info.value)


def test_numbers_from_python_are_checked_too_and_yaml_exponents_are_numbers():
    with pytest.raises(ConfigError, match="train.learning_rate must be a finite number"):
        Config(train=TrainConfig(learning_rate=float("inf")))
    assert load_config(None, ["train.learning_rate=5e-4"]).train.learning_rate == 0.0005  # YAML 1.1 reads text


def test_alias_bomb_and_deep_nesting_are_refused_before_they_are_built(tmp_path):
    levels = ["&l0 [" + ", ".join(["1"] * 10) + "]"]
    levels += [f"&l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, 9)]  # 10^9 values expanded
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(f"task:\n  arithmetic:\n    train_digits: [{', '.join(levels)}]\n")
    deep = tmp_path / "deep.yaml"
    deep.write_text("task:\n  arithmetic:\n    train_digits: " + "[" * 5000 + "]" * 5000 + "\n")
    tracemalloc.start()
    with pytest.raises(ConfigError, match="more than 100,000 values once aliases are expanded"):
        load_config(bomb)
    with pytest.raises(ConfigError, match=r"deep.yaml:3: nested deeper than 32 levels"):
        load_config(deep)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 20 << 20


def test_messages_never_echo_a_huge_value(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(None, ["seed=" + "x" * 1_000_000])
    assert "seed must be int" in str(info.value) and len(str(info.value)) < 200
    big = tmp_path / "big.yaml"
    big.write_text('seed: "' + "x" * 2_000_000 + '"\n')
    with pytest.raises(ConfigError, match="larger than 1024 KiB") as info:
        load_config(big)
    assert len(str(info.value)) < 300


def test_task_import_path_takes_only_a_task_class(monkeypatch):
    called = []
    monkeypatch.setattr(os, "system", lambda *a: called.append(a))
    from selftaught.tasks import make_task

    for name, fragment in [
        ("os:system", "not the standard library"),
        ("code:interact", "not the standard library"),
        ("selftaught.tasks.jsonl:validate_jsonl", "is not a class"),
        ("selftaught.config:Config", "lacks bucket, check"),
    ]:
        with pytest.raises(ConfigError, match=fragment):
            make_task(load_config(None, [f"task.name={name}"]))
    assert not called


# ---------------------------------------------------------------------------------- the run directory
def test_new_run_refuses_a_folder_that_is_not_a_run(tmp_path):
    mine = tmp_path / "mine"
    (mine / "base").mkdir(parents=True)
    (mine / "summary.json").write_text('{"mine": 1}')
    (mine / "base" / "metrics.json").write_text('{"mine": 2}')
    before = _tree(mine)
    with pytest.raises(ConfigError, match="is not empty and is not a selftaught run"):
        prepare_run_dir(tiny_run_config(tmp_path), mine, resume=False)
    assert _tree(mine) == before
    leftover = tmp_path / "killed-at-startup"
    leftover.mkdir()
    (leftover / "run.lock").write_text("123 gone-host\n")  # a run killed before it wrote its config
    _, run = prepare_run_dir(tiny_run_config(tmp_path), leftover, resume=False)
    release_run_dir(run)
    assert (leftover / "config.yaml").is_file()


def test_saved_config_must_be_complete_and_match_its_digest(tmp_path):
    config, root = _new_run(tmp_path)
    saved = root / "config.yaml"
    text = saved.read_text()
    assert text.startswith("# selftaught run config") and "# sha256: " in text
    cases = [
        (text[: text.index("\nloop:") + 1], r"is incomplete \(missing loop\b"),
        (text.replace("seed: 0", "seed: 1"), "no longer matches the sha256"),
        ("seed: [0\n", r"config.yaml:\d+ is not valid YAML"),
        (b"seed: \xff\n", "config.yaml:1 is not UTF-8"),
    ]
    for damaged, fragment in cases:
        saved.write_bytes(damaged if isinstance(damaged, bytes) else damaged.encode())
        with pytest.raises(ConfigError, match=fragment):
            prepare_run_dir(None, root, resume=True)
    saved.write_text(yaml.safe_dump(config.to_dict()))  # a run from before digests: complete, so accepted
    used, run = prepare_run_dir(None, root, resume=True)
    release_run_dir(run)
    # a run started by an older selftaught: intact (its digest matches) but without a key added since
    older = config.to_dict()
    del older["report_to"]
    rundir.save_config(root, older)
    used, run = prepare_run_dir(None, root, resume=True)
    release_run_dir(run)
    assert used.report_to == "none"
    assert used == config
    # the same older run, resumed with its own recipe and with a safe change: no spurious difference
    del older["distributed"]
    rundir.save_config(root, older)
    release_run_dir(prepare_run_dir(config, root, resume=True)[1])
    more = config_from_dict({**config.to_dict(), "loop": {**config.to_dict()["loop"], "iterations": 3}})
    used, run = prepare_run_dir(more, root, resume=True, force=True)
    release_run_dir(run)
    assert used.loop.iterations == 3
    # from before digests, without the keys added since: still complete
    saved.write_text(yaml.safe_dump({k: v for k, v in config.to_dict().items() if k != "distributed"}))
    release_run_dir(prepare_run_dir(None, root, resume=True)[1])


@pytest.mark.parametrize("link", ["iter_001/.chunks", "iter_001/.trainer", "iter_001", "base/metrics.json"])
def test_links_inside_a_run_are_refused_and_nothing_outside_is_touched(tmp_path, link):
    _, root = _new_run(tmp_path)
    outside = tmp_path / "outside"
    (outside / "generate").mkdir(parents=True)
    (outside / "generate" / "keep.txt").write_text("mine")
    (outside / "checkpoint-1").mkdir()
    before = _tree(outside)
    (root / link).parent.mkdir(parents=True, exist_ok=True)
    (root / link).symlink_to(outside)
    with pytest.raises(rundir.RunDirError, match="is a symbolic link"):
        prepare_run_dir(None, root, resume=True)
    with pytest.raises(rundir.RunDirError, match="is a symbolic link"):
        rundir.remove_scratch(root, root / link / "generate")
    assert _tree(outside) == before
    assert not (root / "run.lock").exists()  # a refused resume does not keep the lock


def test_force_cannot_change_what_finished_work_depends_on(tmp_path):
    config, root = _new_run(tmp_path)
    old = config.to_dict()
    chunk = {**old, "generation": {**old["generation"], "chunk_size": 5}}
    more = {**old, "loop": {**old["loop"], "iterations": 3}}
    rate = {**old, "train": {**old["train"], "learning_rate": 1e-4}}
    for new in (chunk, more, rate):  # nothing done yet: anything goes
        rundir.check_forced_changes(root, old, new)
    (root / "iter_001" / ".chunks" / "generate").mkdir(parents=True)
    (root / "iter_001" / ".chunks" / "generate" / "chunk_00000.jsonl").write_text("")
    with pytest.raises(ConfigError, match="--force cannot change generation.chunk_size"):
        rundir.check_forced_changes(root, old, chunk)
    rundir.check_forced_changes(root, old, more)  # how far the run goes: always allowed
    rundir.check_forced_changes(root, old, rate)  # no training has started
    atomic.atomic_write_json(root / "iter_001" / "phases.json", {"generate": 1.0, "rationalize": 1.0, "train": 2.0})
    with pytest.raises(ConfigError, match="--force cannot change train.learning_rate"):
        rundir.check_forced_changes(root, old, rate)
    with pytest.raises(ConfigError, match="--force cannot change generation.chunk_size"):
        prepare_run_dir(config_from(chunk), root, resume=True, force=True)


def config_from(data):
    from selftaught.config import config_from_dict

    return config_from_dict(data)


def test_damaged_run_files_are_one_line_naming_the_file(tmp_path):
    run = rundir.RunDir(tmp_path)
    folder = run.iteration(1)
    folder.mkdir()
    for content, fragment in [
        ("", "phases.json: not valid JSON (Expecting value, line 1 column 1)"),
        ("[1]", "phases.json: expected a JSON dict, got list"),
        ('{"train": "x"}', "phases.json: phase 'train' has no number of seconds"),
    ]:
        (folder / "phases.json").write_text(content)
        with pytest.raises(rundir.RunDirError, match=None) as info:
            run.is_done(folder, "train")
        assert fragment in str(info.value) and "delete" in str(info.value)
    (folder / "metrics.json").write_text('{"iteration": 1, "accuracy": 0.5, "accuracy_by')
    with pytest.raises(rundir.RunDirError, match="metrics.json: not valid JSON"):
        run.metrics(folder)
    (folder / "generated.jsonl").write_text('{"id": "1"}\n')
    with pytest.raises(rundir.RunDirError, match=r"generated.jsonl:1: not a row of this file \(missing hinted"):
        read_samples(folder / "generated.jsonl")


def test_report_writes_the_plot_atomically_never_through_a_link(tmp_path, monkeypatch):
    from selftaught.reporting import table as report

    row = {"iteration": 0, "accuracy": 0.5, "accuracy_by_bucket": {"1": 0.5}}
    atomic.atomic_write_json(tmp_path / "summary.json", {"task": "t", "base": row, "iterations": []})
    victim = tmp_path / "elsewhere.png"
    victim.write_bytes(b"mine")
    (tmp_path / "accuracy.png").symlink_to(victim)
    _, plot = report.report(tmp_path)
    assert victim.read_bytes() == b"mine" and not plot.is_symlink() and plot.read_bytes()[:4] == b"\x89PNG"

    def read_only(path, data):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(report, "atomic_write_bytes", read_only)
    table, plot = report.report(tmp_path)
    assert table.row_count == 1 and plot.startswith("not redrawn (Read-only file system")
    # the command, report.html included: the table still shows, exit 0
    from typer.testing import CliRunner

    from selftaught.cli import app
    from selftaught.reporting import html as report_html

    monkeypatch.setattr(report_html, "atomic_write_text", lambda path, text: read_only(path, text))
    result = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "html: not written (Read-only file system" in " ".join(result.output.split())


def test_every_kind_of_full_disk_gives_the_same_line(tmp_path, monkeypatch):
    from selftaught.rundir import interrupts

    chained = RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")
    chained.__context__ = RuntimeError("basic_ios::clear: iostream error")
    errors = [
        OSError(errno.ENOSPC, "No space left on device", "x.json"),
        Exception("Error while serializing: I/O error: No space left on device (os error 28)"),  # safetensors
        OSError(errno.EDQUOT, "Disk quota exceeded"),
        chained,  # torch: no errno at all; then the free space decides
    ]
    monkeypatch.setattr(interrupts, "_free_bytes", lambda where: 1024)
    lines = {write_failure(err, tmp_path / "run") for err in errors}
    assert lines == {f"no space left on device while writing {tmp_path / 'run'}: free some space; "
                     f"then: selftaught run --resume {tmp_path / 'run'}"}  # fmt: skip
    monkeypatch.setattr(interrupts, "_free_bytes", lambda where: 50 << 30)
    assert write_failure(chained, tmp_path) is None  # plenty of space: a real bug, not hidden
    assert "Read-only file system" in write_failure(OSError(errno.EROFS, "Read-only file system"), tmp_path)
    assert write_failure(KeyError("x"), tmp_path) is None


def test_non_utf8_run_directory_is_refused(tmp_path):
    out = os.fsdecode(os.fsencode(str(tmp_path)) + b"/run-\xff")
    with pytest.raises(ConfigError, match=r"run-\\xff is not valid UTF-8"):
        prepare_run_dir(tiny_run_config(tmp_path), out, resume=False)
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------------- the lock
def _try_lock(root, start, done, wins):
    start.wait()
    try:
        rundir.RunLock(root).acquire()
        with wins.get_lock():
            wins.value += 1
    except rundir.RunInUse:
        pass
    done.wait()
    os._exit(0)


def test_simultaneous_acquirers_exactly_one_wins(tmp_path):
    ctx = multiprocessing.get_context("fork")
    outcomes = []
    for trial in range(40):
        root = tmp_path / f"t{trial}"
        root.mkdir()
        start, done, wins = ctx.Barrier(3), ctx.Barrier(3), ctx.Value("i", 0)
        procs = [ctx.Process(target=_try_lock, args=(root, start, done, wins)) for _ in range(3)]
        [p.start() for p in procs]
        [p.join() for p in procs]
        outcomes.append(wins.value)
    assert outcomes == [1] * 40


@pytest.mark.parametrize("content", ["1 {host}\n", "4242 container-7f3a9c0d\n", "garbage", ""])
def test_a_lock_file_nobody_holds_is_taken_over(tmp_path, content):
    """PID 1 is alive but not a run; the other host is a dead container: the file decides nothing."""
    import socket

    (tmp_path / "run.lock").write_text(content.format(host=socket.gethostname()))
    lock = rundir.RunLock(tmp_path)
    lock.acquire()
    assert (tmp_path / "run.lock").read_text() == f"{os.getpid()} {socket.gethostname()}\n"
    lock.release()


# ---------------------------------------------------------------------------------- data files
def test_validate_names_fifos_and_devices(tmp_path):
    from selftaught.tasks.base import TaskDataError
    from selftaught.tasks.data import read_rows

    os.mkfifo(tmp_path / "data.jsonl")  # opening it would block: it must not be opened
    with pytest.raises(TaskDataError, match="is a FIFO"):
        list(read_rows(str(tmp_path / "data.jsonl")))
    with pytest.raises(TaskDataError, match="/dev/zero: is a character device, not a regular file"):
        list(read_rows("/dev/zero"))
    with pytest.raises(TaskDataError, match="no such file"):
        list(read_rows(str(tmp_path / "missing.jsonl")))


def test_a_one_gigabyte_line_is_read_in_bounded_memory(tmp_path):
    from selftaught.tasks.data import read_rows

    big = tmp_path / "big.jsonl"
    with open(big, "wb") as handle:
        handle.truncate(1 << 30)  # sparse: 1 GiB of NUL bytes on one line
        handle.seek(1 << 30)
        handle.write(b'\n{"question": "q", "answer": "a"}\n')
    tracemalloc.start()
    rows = list(read_rows(str(big)))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert rows[0].error == "line is 1,073,741,825 bytes (limit 1,048,576)"
    assert rows[1].data == {"question": "q", "answer": "a"} and rows[1].location.endswith(":2")
    assert peak < 8 << 20


def test_eval_of_a_run_directory_uses_the_runs_own_config(tmp_path):
    from selftaught.evaluate import eval_config

    config, root = _new_run(tmp_path, loop={"iterations": 1}, task={"name": "arithmetic"})
    assert eval_config(str(root), None, []) == config
    assert eval_config(str(root), None, ["seed=3"]).seed == 3
    assert eval_config(str(tmp_path / "model-folder"), None, []) == Config() != config
