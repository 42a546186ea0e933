"""The run directory: its paths, its files' readers and writers, its lock, its saved config.

Nothing outside this package spells a run-directory file name; see `layout` for the tree.
"""

from selftaught.rundir.files import (
    MAX_JSON_BYTES,
    MAX_JSONL_LINE_BYTES,
    RunDirError,
    damaged,
    read_json,
    read_jsonl,
    refuse_symlinks,
    remove_scratch,
    sweep_temp,
)
from selftaught.rundir.layout import RunDir, StepDir, chunk_file, train_processes_log, trainer_layout_file
from selftaught.rundir.lock import RunInUse, RunLock
from selftaught.rundir.metrics import IterationMetrics, Summary
from selftaught.rundir.saved_config import (
    check_forced_changes,
    check_fresh,
    config_changes,
    config_diff,
    config_digest,
    is_run_dir,
    load_saved_config,
    prepare_run_dir,
    read_saved_config,
    release_run_dir,
    save_config,
)

__all__ = [
    "MAX_JSON_BYTES",
    "MAX_JSONL_LINE_BYTES",
    "IterationMetrics",
    "Summary",
    "RunDir",
    "RunDirError",
    "RunInUse",
    "StepDir",
    "chunk_file",
    "train_processes_log",
    "trainer_layout_file",
    "RunLock",
    "check_forced_changes",
    "check_fresh",
    "config_changes",
    "config_diff",
    "config_digest",
    "damaged",
    "is_run_dir",
    "load_saved_config",
    "prepare_run_dir",
    "read_json",
    "read_jsonl",
    "read_saved_config",
    "refuse_symlinks",
    "release_run_dir",
    "remove_scratch",
    "save_config",
    "sweep_temp",
]
