"""Run a `TrainJob` on N processes with ``accelerate launch`` (``distributed.train_processes``).

The loop stays one process: for each training phase it starts ``accelerate launch -m
selftaught.training.worker`` and reads the main process's progress lines from its stdout. Without an
``accelerate_config`` the launch is DDP through torchrun (``--multi_gpu``: accelerate's name for its
torchrun launcher, which on a machine without GPUs runs DDP over gloo); with one (``configs/fsdp.yaml``,
``configs/deepspeed_zero2.yaml``, ...) accelerate applies that file. The processes' own output goes to
``logs/train_processes.log`` in the iteration folder; the main process's result comes back in
``result.json`` in the job's scratch folder.

A launch dies with the loop: the launcher gets SIGTERM when the loop's process ends in any way, and each
worker gets SIGKILL when the launcher ends (PR_SET_PDEATHSIG; torchrun puts its workers in sessions of
their own, so signalling the launcher's group does not reach them), so a resumed run never races an orphan.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from selftaught.training.finite import NonFiniteError
from selftaught.training.phase import TrainJob

NON_FINITE_EXIT = 3  # the worker's exit code for a diverged run
RESULT_FILE = "result.json"  # the main process's last word: {"log", "world_size"} or {"error"}


class TrainLaunchError(RuntimeError):
    """The training processes failed; the message names their log."""


# run first in the launcher's process, then exec'd into accelerate launch: the launcher gets SIGTERM when
# the loop dies (PR_SET_PDEATHSIG survives exec), and exits at once if the loop died before that was set
SHIM = (
    "import os, sys; from selftaught.training.launch import die_with_parent; import signal; "
    "die_with_parent(signal.SIGTERM, int(sys.argv[1])); os.execv(sys.executable, [sys.executable, *sys.argv[2:]])"
)


def launch_command(job_path: Path, out_dir: Path, processes: int, accelerate_config: str = "") -> list[str]:
    # precision comes from the Trainer (bf16 on a GPU that has it); naming it silences accelerate's notice
    how = ["--config_file", accelerate_config] if accelerate_config else ["--multi_gpu", "--mixed_precision", "no"]
    how += [] if accelerate_config else ["--dynamo_backend", "no"]
    return [
        sys.executable, "-c", SHIM, str(os.getpid()), "-m", "accelerate.commands.launch", *how,
        "--num_processes", str(processes), "--num_machines", "1", "--main_process_port", str(_free_port()),
        "-m", "selftaught.training.worker", str(job_path), str(out_dir),
    ]  # fmt: skip


def train_in_processes(
    job: TrainJob,
    out_dir: Path,
    processes: int,
    accelerate_config: str,
    log_path: Path,
    on_step: Callable[[int, float | None], None] | None = None,
) -> tuple[list[dict], int]:
    """Run ``job`` on ``processes`` processes; returns the loss log and how many processes trained."""
    scratch = Path(job.scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    job_path, result_path = scratch / "job.json", scratch / RESULT_FILE
    job_path.write_text(job.to_json())
    result_path.unlink(missing_ok=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = launch_command(job_path, out_dir, processes, accelerate_config)
    with open(log_path, "a") as log:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True)
        try:
            _follow(proc, on_step)
            code = proc.wait()
        finally:
            _stop(proc)
    result = json.loads(result_path.read_text()) if result_path.is_file() else {}
    if "error" in result:
        raise NonFiniteError(result["error"])
    if code != 0 or "log" not in result:
        raise TrainLaunchError(f"{job.label}: the {processes} training processes failed (exit {code}); see {log_path}")
    return result["log"], result["world_size"]


def _follow(proc: subprocess.Popen, on_step) -> None:
    """Pass the main process's step lines to ``on_step`` until the launch ends.

    A reader thread fills a queue, so the end of the launch is noticed even when a grandchild (a
    tracker's service process) keeps the pipe open; ``on_step`` runs here, so its errors stop the launch.
    """
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    while True:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            if proc.poll() is None:
                continue
            time.sleep(0.2)  # the last lines may still be in the pipe
            if lines.empty():
                return
            continue
        try:
            message = json.loads(line)
        except ValueError:
            continue  # a library printing to stdout
        if isinstance(message, dict) and "step" in message and on_step:
            on_step(message["step"], message.get("loss"))


def _stop(proc: subprocess.Popen) -> None:
    """Stop the launch if it is still running (the loop was interrupted). torchrun's own shutdown gives
    its workers 30 s; after that the launcher is killed, and its workers die with it (`die_with_parent`)."""
    if proc.poll() is not None:
        return
    for signum, wait_s in ((signal.SIGTERM, 45), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, signum)
            proc.wait(timeout=wait_s)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def die_with_parent(signum: int, parent_pid: int | None = None) -> None:
    """Linux: have the kernel send ``signum`` to this process when its parent dies, even by SIGKILL."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signum)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return  # not Linux: an interrupted loop still stops the launch in `_stop`
    if parent_pid is not None and os.getppid() != parent_pid:  # the parent died before the line above
        os._exit(1)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
