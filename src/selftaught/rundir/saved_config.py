"""A run's saved config: written once with its digest, checked on every resume; what ``--force`` may change.

``config.yaml`` starts with a comment holding the sha256 of the resolved config (canonical JSON). On
``--resume`` the file must parse, hold every key, and match its digest: a truncated or hand-edited
config would otherwise silently become another experiment (a missing key takes its default). Changes
go through ``--set key=value --force``, which may change only keys that cannot invalidate finished
work (`SAFE_ON_RESUME`) once the run has results. `prepare_run_dir` locks a run directory and settles
its config before any work.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import yaml

from selftaught.common.atomic import atomic_write_text
from selftaught.common.bounded import printable, shown
from selftaught.config import Config, ConfigError, config_from_dict, read_yaml_file
from selftaught.rundir.files import RunDirError, refuse_symlinks, sweep_temp
from selftaught.rundir.layout import RunDir
from selftaught.rundir.lock import RunLock

DIGEST_PREFIX = "# sha256: "
HEADER = (
    "# selftaught run config: written when the run started and checked on --resume; do not edit.\n"
    "# Change a setting with: selftaught run --resume DIR --set key=value --force\n"
)
# keys that change resources or how far the run goes, never the meaning of a finished result
SAFE_ON_RESUME = (
    "loop.iterations",
    "loop.patience",
    "loop.min_improvement",
    "generation.batch_size",
    "model.device",
    "train.save_every_steps",
    "train.gradient_checkpointing",
    # where work runs: generation output is the same on any number of workers, and the global batch is
    # the same on any number of training processes
    "distributed.generation_workers",
    "distributed.ray_address",
    "distributed.gpus_per_worker",
    "distributed.train_processes",
    "distributed.accelerate_config",
    # the verifier is trained after the last iteration from files the run keeps: asking for it later
    # changes no finished result
    "loop.verifier",
)
# what a new run may find in its --out folder: leftovers of a run killed before it wrote its config
STARTUP_LEFTOVERS = (RunDir.LOCK,)


def config_digest(data: dict) -> str:
    canonical = json.dumps(data, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def save_config(root: str | Path, data: dict) -> None:
    text = HEADER + f"{DIGEST_PREFIX}{config_digest(data)}\n" + yaml.safe_dump(data, sort_keys=False)
    atomic_write_text(RunDir(root).config, text)


def _recorded_digest(path: Path) -> str | None:
    with open(path, "rb") as handle:
        head = handle.read(1024).decode("utf-8", "replace")
    for line in head.splitlines()[:5]:
        if line.startswith(DIGEST_PREFIX):
            return line[len(DIGEST_PREFIX) :].strip()
    return None  # written before digests existed: accepted if complete


def missing_keys(schema: dict, data, prefix: str = "") -> list[str]:
    """Dotted keys of ``schema`` absent from ``data``.

    >>> missing_keys({"a": 1, "b": {"c": 2, "d": 3}}, {"b": {"c": 0}})
    ['a', 'b.d']
    """
    missing = []
    for key, value in schema.items():
        if not isinstance(data, dict) or key not in data:
            missing.append(f"{prefix}{key}")
        elif isinstance(value, dict):
            missing += missing_keys(value, data[key], f"{prefix}{key}.")
    return missing


# keys added after config digests existed: a run started before them has an undigested config without them
ADDED_AFTER_DIGESTS = (
    "distributed",
    "task.word_problems",
    "verifier",
    "loop.verifier",
    "train.objective",
    "train.rpo_beta",
    "train.rpo_alpha",
)


def _added_later(key: str) -> bool:
    return any(key == k or key.startswith(k + ".") for k in ADDED_AFTER_DIGESTS)


def load_saved_config(root: str | Path) -> dict:
    """The saved config of the run in ``root``, as a dict, after every check; `ConfigError` names the file."""
    path = RunDir(root).config
    label = printable(str(path))
    if not path.is_file():
        raise ConfigError(f"cannot resume: {label} does not exist")
    data = read_yaml_file(path, label)
    recorded = _recorded_digest(path)
    intact = recorded is not None and recorded == config_digest(data)
    # an intact file may lack keys that a later selftaught version added: those take their defaults
    missing = [] if intact else [k for k in missing_keys(Config().to_dict(), data) if not _added_later(k)]
    if missing:
        listed = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
        raise ConfigError(
            f"{label} is incomplete (missing {listed}): it was truncated or edited, and a missing key would "
            "silently take its default; restore the file"
        )
    try:
        config_from_dict(data)
    except ConfigError as err:
        raise ConfigError(f"{label}: {err}") from None
    if recorded is not None and not intact:
        raise ConfigError(
            f"{label} no longer matches the sha256 recorded when the run started (edited or damaged); "
            "restore it, and pass changes as --set key=value --force"
        )
    return config_from_dict(data).to_dict()  # keys added since the run started take their defaults


def read_saved_config(root: str | Path) -> Config:
    """The run's `Config`, after every check of `load_saved_config` (the one reader of ``config.yaml``)."""
    return config_from_dict(load_saved_config(root))


def config_changes(old: dict, new: dict, prefix: str = "") -> list[tuple[str, object, object]]:
    """(dotted key, old value, new value) for every key whose value differs."""
    changes = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        where = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            changes += config_changes(a, b, where + ".")
        elif a != b:
            changes.append((where, a, b))
    return changes


def config_diff(old: dict, new: dict) -> list[str]:
    """Dotted keys whose values differ, as ``key: old -> new`` (values cut short).

    >>> config_diff({"a": 1, "b": {"c": 2}}, {"a": 1, "b": {"c": 3}})
    ['b.c: 2 -> 3']
    """
    return [f"{key}: {shown(a, 40)} -> {shown(b, 40)}" for key, a, b in config_changes(old, new)]


def results_in(root: str | Path, training_only: bool = False) -> list[str]:
    """Folders of ``root`` holding work a config change could invalidate.

    Any result (M0's evaluation, any iteration) depends on every key; ``train.*`` keys only on training
    that has started (a finished train phase, or Trainer checkpoints of an unfinished one).
    """
    run = RunDir(root)
    if not training_only:
        return sorted(p.name for p in [run.base, *run.iteration_folders()] if p.exists())
    started = [f for f in run.iteration_folders() if any(run.trainer_scratch(f).glob("checkpoint-*"))]
    return [f.name for f in run.iteration_folders() if run.is_done(f, "train") or f in started]


def check_forced_changes(root: str | Path, old: dict, new: dict) -> None:
    """Refuse (even with ``--force``) a change that would mix results made under two configs."""
    unsafe = [key for key, _, _ in config_changes(old, new) if key not in SAFE_ON_RESUME]
    for keys, done in (
        ([k for k in unsafe if not k.startswith("train.")], results_in(root)),
        ([k for k in unsafe if k.startswith("train.")], results_in(root, training_only=True)),
    ):
        if keys and done:
            raise ConfigError(
                f"--force cannot change {', '.join(keys)}: {printable(str(root))} already holds results made "
                f"with the saved values ({', '.join(done[:3])}{', ...' if len(done) > 3 else ''}) and mixing them "
                f"would corrupt the run; start a new run with --out (on resume, --force may change: "
                f"{', '.join(SAFE_ON_RESUME)})"
            )


def check_fresh(root: str | Path) -> None:
    """A new run needs ``root`` absent, empty, or holding only leftovers of a run killed at startup."""
    root = Path(root)
    shown_root = printable(str(root))
    if not root.exists() and not root.is_symlink():
        return
    if not root.is_dir():
        raise ConfigError(f"output directory {shown_root} is not writable: it is a file")
    if RunDir(root).config.exists():
        raise ConfigError(f"{shown_root} already holds a run; use --resume {shown_root} or another --out")
    foreign = []
    with os.scandir(root) as entries:
        for entry in entries:
            leftover = entry.name in STARTUP_LEFTOVERS or (
                entry.name.startswith(f".{RunDir.CONFIG}.") and entry.name.endswith(".tmp")
            )
            if not leftover:
                foreign.append(printable(entry.name))
                if len(foreign) > 3:
                    break
    if foreign:
        listed = ", ".join(sorted(foreign[:3])) + (", ..." if len(foreign) > 3 else "")
        raise ConfigError(
            f"{shown_root} is not empty and is not a selftaught run (it holds {listed}); "
            "choose a new or empty folder for --out"
        )


def is_run_dir(path: str | Path) -> bool:
    return RunDir(path).config.is_file()


__all__ = [
    "RunDirError",
    "load_saved_config",
    "save_config",
    "check_fresh",
    "check_forced_changes",
    "prepare_run_dir",
    "release_run_dir",
]


def prepare_run_dir(config: Config | None, out_dir: str | Path, resume: bool, force: bool = False):
    """Lock the run directory and settle the config: a new run saves it, a resumed run reuses it.

    A new run needs an absent or empty ``out_dir``. A resumed run's saved config must be complete and
    match its digest; resuming with a different ``config`` is refused with the differing keys listed,
    unless ``force``, and even then for keys that would invalidate finished work. Nothing inside the
    directory may be a symbolic link. The lock is held until `release_run_dir` or process exit.
    """
    run = RunDir(out_dir)
    shown = printable(str(run.root))
    if shown != str(run.root):
        raise ConfigError(f"run directory {shown} is not valid UTF-8; use a UTF-8 name")
    if resume and not (run.root / "config.yaml").is_file():
        raise ConfigError(f"cannot resume: {shown}/config.yaml does not exist")
    if not resume:
        check_fresh(run.root)  # before creating anything in a folder that is not ours
    try:
        run.root.mkdir(parents=True, exist_ok=True)
        refuse_symlinks(run.root)
        lock = RunLock(run.root)
        lock.acquire()
    except OSError as err:
        raise ConfigError(f"output directory {shown} is not writable: {err.strerror or err}") from None
    try:
        config = _settle_config(config, run, resume, force)
    except BaseException:
        lock.release()
        raise
    return config, run


def _settle_config(config: Config | None, run: RunDir, resume: bool, force: bool) -> Config:
    """With the lock held: check the directory again (another process may have raced us), then the config."""
    refuse_symlinks(run.root)
    if not resume:
        check_fresh(run.root)
        save_config(run.root, config.to_dict())
        return config
    sweep_temp(run.root)  # leftovers of a writer killed mid-write; we hold the lock
    old = load_saved_config(run.root)
    if config is None:
        return config_from_dict(old)
    changes = config_diff(old, config.to_dict())
    if not changes:
        return config
    if not force:
        raise ConfigError(f"config differs from the saved run ({'; '.join(changes)}); pass --force to use it")
    check_forced_changes(run.root, old, config.to_dict())
    save_config(run.root, config.to_dict())
    return config


def release_run_dir(run: RunDir) -> None:
    RunLock(run.root).release()
