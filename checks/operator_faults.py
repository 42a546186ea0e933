"""Operator faults (issue 12): every case run against the real `selftaught` CLI, its outcome recorded.

Each case runs ``python -m selftaught.cli`` as its own process in a fresh sandbox, with PYTHONPATH set
to the source tree under test, so the same cases replay against an older checkout (``--src OLD/src
--label before``). Recorded per case: exit code, stderr lines, traceback or not, whether anything
outside the run directory changed (a sentinel folder hashed before and after), peak memory (RSS of the
process) and, where a resume applies, whether the resumed run matches an uninterrupted reference
(every ``train.jsonl`` and all accuracies). ``clean`` is the issue's bar: one line and exit 2 for a
refusal (or the stated exit), nothing outside touched, resumed identical.

Run:  .venv/bin/python checks/operator_faults.py [--only CASE ...]
      .venv/bin/python checks/operator_faults.py --src /tmp/before/src --label before
Writes checks/results/operator_faults.json ({label: {case: outcome}}), printing a before/after table.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from operator_sandbox import (  # noqa: E402
    CASES,
    LOCK_RACE,
    RESULTS,
    SLOW_CHECKPOINT,
    SRC,
    World,
    _damaged_file,
    _foreign_lock,
    _interrupt,
    _mount,
    _override_case,
    _recipe_case,
    _resume_check,
    _validate,
    _without_tail,
    alive,
    case,
    outcome,
    refused,
    run_process,
    snapshot,
)


# ------------------------------------------------------------------------------------------ cases
# ---- links inside the run directory, a foreign --out folder
def _linked_scratch(world: World, run: Path, box: Path, scratch: str, target: Path) -> dict:
    """Resume with ``iter_001/<scratch>`` a link to ``target`` outside the run; then without the link."""
    before = snapshot(box / "outside")
    (run / "iter_001").mkdir()
    (run / "iter_001" / scratch).symlink_to(target)
    row = outcome(world.resume(run))
    row["outside_untouched"] = snapshot(box / "outside") == before
    (run / "iter_001" / scratch).unlink()
    _resume_check(world, run, row)
    row["clean"] = refused(row, "symbolic link") and row["outside_untouched"] and row["resumed_identical"]
    return row


@case("link-chunks", "links")
def link_chunks(world: World, box: Path) -> dict:
    run = world.run_copy(box, drop_iteration=True)
    (box / "outside" / "generate").mkdir()
    (box / "outside" / "generate" / "keep.txt").write_text("mine\n")
    return _linked_scratch(world, run, box, ".chunks", box / "outside")


@case("link-trainer", "links")
def link_trainer(world: World, box: Path) -> dict:
    run = world.run_copy(box, drop_iteration=True)
    for k in (1, 2, 3):
        (box / "outside" / "ckpts" / f"checkpoint-{k}").mkdir(parents=True)
        (box / "outside" / "ckpts" / f"checkpoint-{k}" / "weights.bin").write_bytes(os.urandom(1024))
    return _linked_scratch(world, run, box, ".trainer", box / "outside" / "ckpts")


@case("link-plot", "links")
def link_plot(world: World, box: Path) -> dict:
    run = world.run_copy(box)
    (box / "outside" / "pic.png").write_bytes(b"my own picture")
    before = snapshot(box / "outside")
    (run / "accuracy.png").unlink()
    (run / "accuracy.png").symlink_to(box / "outside" / "pic.png")
    row = outcome(world.cli(["report", str(run)], box))
    row["outside_untouched"] = snapshot(box / "outside") == before
    row["plot_is_a_file"] = (run / "accuracy.png").is_file() and not (run / "accuracy.png").is_symlink()
    row["clean"] = row["exit"] == 0 and not row["traceback"] and row["outside_untouched"] and row["plot_is_a_file"]
    return row


@case("out-not-a-run", "links")
def out_not_a_run(world: World, box: Path) -> dict:
    mine = box / "outside"
    (mine / "summary.json").write_text('{"mine": 1}\n')
    (mine / "base").mkdir()
    (mine / "base" / "metrics.json").write_text('{"mine": 2}\n')
    before = snapshot(mine)
    row = outcome(world.cli(["run", str(world.recipe), "--out", str(mine), "--quiet"], box))
    row["outside_untouched"] = snapshot(mine) == before
    row["clean"] = refused(row, "not a selftaught run") and row["outside_untouched"]
    return row


# ---- a run directory's own files, damaged or edited
@case("config-truncated", "damaged files")
def config_truncated(world: World, box: Path) -> dict:
    return _damaged_file(world, box, "config.yaml", _without_tail, ("incomplete",), drop=True)


@case("config-edited", "damaged files")
def config_edited(world: World, box: Path) -> dict:
    edit = lambda text: text.replace(b"seed: 0", b"seed: 1", 1)  # noqa: E731
    return _damaged_file(world, box, "config.yaml", edit, ("sha256",), drop=True)


@case("config-malformed", "damaged files")
def config_malformed(world: World, box: Path) -> dict:
    return _damaged_file(world, box, "config.yaml", lambda text: b"seed: [0\n\x00\xff", ())


@case("metrics-truncated", "damaged files")
def metrics_truncated(world: World, box: Path) -> dict:
    return _damaged_file(world, box, "iter_001/metrics.json", lambda text: text[: len(text) // 2], ())


@case("phases-empty", "damaged files")
def phases_empty(world: World, box: Path) -> dict:
    return _damaged_file(world, box, "iter_001/phases.json", lambda text: b"", ())


@case("summary-malformed-report", "damaged files")
def summary_malformed(world: World, box: Path) -> dict:
    run = world.run_copy(box)
    (run / "summary.json").write_text('{"iterations": [{"accuracy": "high"}]}\n')
    row = outcome(world.cli(["report", str(run)], box))
    row["clean"] = refused(row, "summary.json")
    return row


# ---- recipes and values
@case("yaml-alias-bomb", "recipes")
def yaml_alias_bomb(world: World, box: Path) -> dict:
    levels = ["&l0 [" + ", ".join(["1"] * 10) + "]"]
    levels += [f"&l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, 9)]
    recipe = f"task:\n  arithmetic:\n    train_digits: [{', '.join(levels)}]\n"
    return _recipe_case(world, box, recipe, ("aliases",))


@case("yaml-deep-nesting", "recipes")
def yaml_deep_nesting(world: World, box: Path) -> dict:
    return _recipe_case(world, box, "task:\n  arithmetic:\n    train_digits: " + "[" * 5000 + "]" * 5000, ("nested",))


@case("huge-value-recipe", "recipes")
def huge_value_recipe(world: World, box: Path) -> dict:
    return _recipe_case(world, box, 'seed: "' + "x" * 50_000_000 + '"\n', ())


@case("huge-value-override", "recipes")
def huge_value_override(world: World, box: Path) -> dict:
    result = world.cli(["run", "--out", str(box / "run"), "--set", "seed=" + "x" * 100_000], box)
    row = outcome(result)
    row["clean"] = refused(row, "seed") and row["stderr_bytes"] <= 2000
    return row


@case("nan-weight-decay", "numbers")
def nan_weight_decay(world: World, box: Path) -> dict:
    return _override_case(world, box, ["train.weight_decay=.nan"], ("finite",))


@case("learning-rate-1e400", "numbers")
def learning_rate_inf(world: World, box: Path) -> dict:
    return _override_case(world, box, ["train.learning_rate=1.0e+400"], ("finite",))


@case("steps-growth-1e400", "numbers")
def steps_growth_inf(world: World, box: Path) -> dict:
    return _override_case(world, box, ["train.steps_growth=1.0e+400", "loop.iterations=2"], ("steps_growth",))


@case("diverging-loss", "numbers")
def diverging_loss(world: World, box: Path) -> dict:
    row = _override_case(world, box, ["train.learning_rate=1.0e+30"], ("diverged",))
    if (box / "run" / "config.yaml").is_file():  # then a lower rate, allowed since nothing was trained
        retry = world.resume(box / "run", "--set", "train.learning_rate=0.0005", "--force")
        row["retry_with_lower_rate_exit"] = retry["exit"]
        row["retry_identical"] = retry["exit"] == 0 and world.identical(box / "run")
    row["clean"] = row["clean"] and row.get("retry_identical", False)
    return row


# ---- signals and the lock
@case("sigterm", "signals")
def sigterm(world: World, box: Path) -> dict:
    row = _interrupt(world, box, [signal.SIGTERM])
    row["clean"] = row["clean"] and not row["lock_left"]
    return row


@case("ctrl-c", "signals")
def ctrl_c(world: World, box: Path) -> dict:
    return _interrupt(world, box, [signal.SIGINT])


@case("double-ctrl-c-in-checkpoint", "signals")
def double_ctrl_c(world: World, box: Path) -> dict:
    return _interrupt(world, box, [signal.SIGINT, signal.SIGINT], wrapper=SLOW_CHECKPOINT)


@case("lock-race-300", "signals")
def lock_race(world: World, box: Path) -> dict:
    result = run_process([sys.executable, "-c", LOCK_RACE, "300"], box, world.src, 600)
    row = outcome(result)
    counts = json.loads(result["stdout"].strip().splitlines()[-1]) if result["exit"] == 0 else {}
    row |= counts
    row["message"] = f"both won {counts.get('both_won')}/300, none won {counts.get('none_won')}/300"
    row["clean"] = result["exit"] == 0 and counts.get("both_won") == 0 and counts.get("none_won") == 0
    return row


@case("lock-pid-reused", "signals")
def lock_pid_reused(world: World, box: Path) -> dict:
    import socket

    return _foreign_lock(world, box, f"1 {socket.gethostname()}\n")  # PID 1 is alive and is not a run


@case("lock-dead-container", "signals")
def lock_dead_container(world: World, box: Path) -> dict:
    return _foreign_lock(world, box, "4242 container-7f3a9c0d\n")


# ---- disks and paths
@case("full-disk-tmpfs", "disk", needs_root=True)
def full_disk(world: World, box: Path) -> dict:
    peak_kb = sum(p.stat().st_size for p in world.ref.rglob("*") if p.is_file()) // 1024
    sizes = sorted({max(64, int(peak_kb * f)) for f in (0.02, 0.1, 0.2, 0.35, 0.5, 0.65, 0.8, 1.0, 1.3, 1.7, 2.5)})
    trials, messages = [], set()
    for size in sizes:
        mnt = box / f"tmpfs_{size}k"
        mnt.mkdir()
        _mount("-t", "tmpfs", "-o", f"size={size}k", "tmpfs", str(mnt))
        try:
            first = world.cli(["run", str(world.recipe), "--out", str(mnt / "run"), "--quiet"], box)
            trial = outcome(first, size_kb=size)
            if first["exit"] != 0:
                messages.add(trial["message"].replace(str(mnt), "TMPFS"))
                _mount("-o", f"remount,size={peak_kb * 8}k", str(mnt))
                _resume_check(world, mnt / "run", trial)
            else:
                trial["resumed_identical"] = world.identical(mnt / "run")
        finally:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
        full = refused(trial, "no space left") and trial["resumed_identical"]
        trial["clean"] = full or (trial["exit"] == 0 and trial["resumed_identical"])
        trials.append(trial)
    clean = sum(t["clean"] for t in trials)
    return {
        "exit": sorted({str(t["exit"]) for t in trials}),
        "lines": max(t["lines"] for t in trials),
        "message": f"{clean}/{len(trials)} sizes clean; {sum(t['exit'] != 0 for t in trials)} hit a full disk; "
        + " / ".join(sorted(messages))[:300],
        "traceback": any(t["traceback"] for t in trials),
        "trials": trials,
        "clean": clean == len(trials),
    }


@case("read-only-report", "disk", needs_root=True)
def read_only_report(world: World, box: Path) -> dict:
    run, ro = world.run_copy(box), box / "ro"
    ro.mkdir()
    _mount("--bind", str(run), str(ro))
    try:
        _mount("-o", "remount,bind,ro", str(ro))
        before = snapshot(run)
        row = outcome(world.cli(["report", str(ro)], box))
        row["table_shown"] = "STaR run" in world.cli(["report", str(ro)], box)["stdout"]
        row["outside_untouched"] = snapshot(run) == before
    finally:
        subprocess.run(["umount", "-l", str(ro)], capture_output=True)
    row["clean"] = row["exit"] == 0 and not row["traceback"] and row["table_shown"] and row["outside_untouched"]
    return row


@case("non-utf8-out", "disk")
def non_utf8_out(world: World, box: Path) -> dict:
    out = os.fsencode(str(box)) + b"/run-\xff"
    command = [sys.executable, "-m", "selftaught.cli", "run", str(world.recipe), "--out", out, "--quiet"]
    row = outcome(run_process(command, box, world.src, 600))
    row["created"] = sorted(os.fsdecode(n) for n in os.listdir(os.fsencode(str(box))) if b"\xff" in n)
    row["clean"] = refused(row, "UTF-8") and not row["created"]
    return row


# ---- models and tasks
@case("garbage-weights-resume", "models")
def garbage_weights(world: World, box: Path) -> dict:
    run = world.run_copy(box)
    (run / "iter_001" / "checkpoint" / "model.safetensors").write_bytes(os.urandom(200_000))
    phases = json.loads((run / "iter_001" / "phases.json").read_text())
    del phases["evaluate"]
    (run / "iter_001" / "phases.json").write_text(json.dumps(phases))
    row = outcome(world.resume(run))
    row["clean"] = refused(row, "cannot load model")
    return row


@case("eval-corrupt-checkpoint", "models")
def eval_corrupt(world: World, box: Path) -> dict:
    run = world.run_copy(box)
    weights = run / "iter_001" / "checkpoint" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    row = outcome(world.cli(["eval", str(run)], box))
    row["clean"] = refused(row, "cannot load model")
    return row


@case("task-os-system", "models")
def task_os_system(world: World, box: Path) -> dict:
    row = _override_case(world, box, ["task.name=os:system"], ("task.name",))
    row["clean"] = row["clean"] and not (box / "run").exists()
    return row


@case("task-code-interact", "models")
def task_code_interact(world: World, box: Path) -> dict:
    row = _override_case(world, box, ["task.name=code:interact"], ("task.name",), timeout=120)
    row["clean"] = row["clean"] and not (box / "run").exists()
    return row


@case("eval-run-dir-config", "models")
def eval_run_dir(world: World, box: Path) -> dict:
    result = world.cli(["eval", str(world.ref)], box, timeout=900)
    row = outcome(result)
    expected = json.loads((world.ref / "summary.json").read_text())["iterations"][-1]["accuracy"]
    try:
        got = json.loads(result["stdout"])
    except ValueError:
        got = {}
    row |= {"eval_accuracy": got.get("accuracy"), "run_accuracy": expected, "questions": got.get("num_examples")}
    row["message"] = row["message"] or f"eval {got.get('accuracy')} on {got.get('num_examples')} vs run {expected}"
    row["clean"] = result["exit"] == 0 and got.get("accuracy") == expected
    return row


@case("force-chunk-size-mid-phase", "models")
def force_chunk_size(world: World, box: Path) -> dict:
    run = box / "run"
    second_chunk = run / "iter_001" / ".chunks" / "generate" / "chunk_00001.jsonl"

    def kill_after_two_chunks(proc):
        while alive(proc) and not second_chunk.exists():
            time.sleep(0.005)
        proc.kill()

    command = [sys.executable, "-m", "selftaught.cli", "run", str(world.recipe), "--out", str(run), "--quiet"]
    run_process(command, box, world.src, 600, during=kill_after_two_chunks)
    row = outcome(world.resume(run, "--set", "generation.chunk_size=5", "--force"))
    generated = run / "iter_001" / "generated.jsonl"
    if generated.is_file():
        keys = [tuple(json.loads(x)[k] for k in ("id", "hinted", "sample")) for x in generated.read_text().splitlines()]
        row["duplicate_rows"] = len(keys) - len(set(keys))
    _resume_check(world, run, row)
    row["clean"] = refused(row, "--force cannot change") and row["resumed_identical"]
    return row


@case("validate-fifo", "data")
def validate_fifo(world: World, box: Path) -> dict:
    os.mkfifo(box / "data.jsonl")
    row = outcome(_validate(world, box, str(box / "data.jsonl")))
    row["clean"] = refused(row, "is a FIFO")
    return row


@case("validate-dev-zero", "data")
def validate_dev_zero(world: World, box: Path) -> dict:
    row = outcome(_validate(world, box, "/dev/zero"))
    row["clean"] = refused(row, "character device")
    return row


@case("validate-1gb-line", "data")
def validate_1gb_line(world: World, box: Path) -> dict:
    with open(box / "big.jsonl", "wb") as handle:
        handle.truncate(1 << 30)  # sparse: 1 GiB of NUL bytes, one line, no disk used
    result = _validate(world, box, str(box / "big.jsonl"), max_rss_mb=6000)
    (box / "big.jsonl").unlink()
    row = outcome(result)
    row["message"] = row["message"] or " ".join(result["stdout"].split())[:200]
    row["clean"] = result["exit"] == 1 and "1,073,741,824 bytes" in result["stdout"] and row["peak_mb"] < 600
    return row


def table(results: dict) -> str:
    labels = [label for label in ("before", "after") if label in results]
    labels += [label for label in results if label not in labels]
    lines = ["| case | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    for name in CASES:
        cells = []
        for label in labels:
            row = results[label].get(name)
            if row is None:
                cells.append("-")
                continue
            mark = "clean" if row.get("clean") else "NOT clean"
            cells.append(f"{mark}: exit {row['exit']}, {row['lines']} line(s); {row['message'][:90]}".replace("|", "/"))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", default=str(SRC), help="source tree to test (default: this checkout's src)")
    parser.add_argument("--label", default="after")
    parser.add_argument("--only", nargs="*", help="case names (default: all)")
    parser.add_argument("--json", default=str(RESULTS), help="results file (updated: one entry per label)")
    args = parser.parse_args()
    output = Path(args.json)
    results = json.loads(output.read_text()) if output.is_file() else {}
    mine = results.setdefault(args.label, {})
    with tempfile.TemporaryDirectory(prefix="operator-faults-") as tmp:
        world = World(Path(tmp), Path(args.src))
        mine["_reference_run_seconds"] = world.reference_seconds
        for name, spec in CASES.items():
            if args.only and name not in args.only:
                continue
            if spec["needs_root"] and os.geteuid() != 0:
                mine[name] = {"skipped": "needs root (mount)"}
                continue
            start = time.perf_counter()
            row = spec["fn"](world, world.box(name))
            row["case_seconds"] = round(time.perf_counter() - start, 1)
            mine[name] = row
            verdict = "clean" if row["clean"] else "NOT CLEAN"
            print(f"{name:<28} {verdict:<9} exit {row['exit']!s:<7} {row['message'][:110]}", flush=True)
            output.write_text(json.dumps(results, indent=2) + "\n")  # keep what finished if a later case hangs
    rows = [r for k, r in mine.items() if not k.startswith("_") and "skipped" not in r]
    mine["_clean"] = f"{sum(r['clean'] for r in rows)}/{len(rows)}"
    output.write_text(json.dumps(results, indent=2) + "\n")
    print("\n" + table(results))
    print(f"\n{args.label}: {mine['_clean']} cases clean")
    return 0 if all(r["clean"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
