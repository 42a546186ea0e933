"""Run a `TrainJob` on N processes with ``accelerate launch`` (``distributed.train_processes``).

The loop stays one process: for each training phase it starts ``accelerate launch -m
selftaught.training.worker`` and reads the main process's progress lines from its stdout. Without an
``accelerate_config`` the launch is DDP through torchrun (``--multi_gpu``: accelerate's name for its
torchrun launcher, which on a machine without GPUs runs DDP over gloo); with one (``configs/fsdp.yaml``,
``configs/deepspeed_zero2.yaml``, ...) accelerate applies that file. The processes' own output goes to
``logs/train_processes.log`` in the iteration folder.

A launch dies with the loop: the launcher gets SIGTERM when the loop's process ends in any way
(PR_SET_PDEATHSIG), and torchrun then stops its workers, so a resumed run never races an orphan.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from selftaught.training.finite import NonFiniteError
from selftaught.training.phase import TrainJob

NON_FINITE_EXIT = 3  # the worker's exit code for a diverged run (its stderr's last line says where)


class TrainLaunchError(RuntimeError):
    """The training processes failed; the message names their log."""


def launch_command(job_path: Path, out_dir: Path, processes: int, accelerate_config: str = "") -> list[str]:
    # precision comes from the Trainer (bf16 on a GPU that has it); naming it silences accelerate's notice
    how = ["--config_file", accelerate_config] if accelerate_config else ["--multi_gpu", "--mixed_precision", "no"]
    how += [] if accelerate_config else ["--dynamo_backend", "no"]
    return [
        sys.executable, "-m", "accelerate.commands.launch", *how,
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
    job_path = Path(job.scratch) / "job.json"
    job_path.parent.mkdir(parents=True, exist_ok=True)
    job_path.write_text(job.to_json())
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = launch_command(job_path, out_dir, processes, accelerate_config)
    with open(log_path, "a") as log:
        proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True, preexec_fn=_die_with_parent
        )
        try:
            result = _follow(proc, on_step)
            code = proc.wait()
        finally:
            _stop(proc)
    if code == NON_FINITE_EXIT:
        raise NonFiniteError(_last_line(log_path))
    if code != 0 or result is None:
        raise TrainLaunchError(f"{job.label}: the {processes} training processes failed (exit {code}); see {log_path}")
    return result["log"], result["world_size"]


def _follow(proc: subprocess.Popen, on_step) -> dict | None:
    """Pass the main process's step lines to ``on_step``; return its final line."""
    final = None
    for line in proc.stdout:
        try:
            message = json.loads(line)
        except ValueError:
            continue  # a library printing to stdout
        if not isinstance(message, dict):
            continue
        if "step" in message and on_step:
            on_step(message["step"], message.get("loss"))
        if "log" in message:
            final = message
    return final


def _stop(proc: subprocess.Popen) -> None:
    """Stop the launch and its workers if they are still running (the loop was interrupted)."""
    if proc.poll() is not None:
        return
    for signum, wait_s in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, signum)
            proc.wait(timeout=wait_s)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def _die_with_parent() -> None:
    """Linux: SIGTERM this process when the loop's process dies, even by SIGKILL."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass  # not Linux: an interrupted loop still stops the launch in `_stop`


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _last_line(path: Path) -> str:
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1] if lines else f"training diverged; see {path}"
