"""`selftaught run` under a user's own multi-process launch (torchrun, accelerate launch, srun + torchrun).

Every rank runs the same command. Rank 0 is the loop: it alone reads and writes the run directory,
generates (itself, or through Ray workers) and, at each training phase, sends the `TrainJob` to the
other ranks, which train with it (`follow`). The job names its files by path, so on several nodes the
run directory must be on a filesystem every node sees. The other ranks wait for jobs on a gloo group
whose timeout is long enough for a whole generation phase; the training itself uses the default
process group (NCCL on GPUs, gloo on CPU) that accelerate set up.
"""

from __future__ import annotations

from datetime import timedelta

from selftaught.training.finite import NonFiniteError, check_loss
from selftaught.training.phase import TrainJob, is_main_process, run_job, world_size

__all__ = ["check_layout", "follow", "is_main_process", "launched", "send", "start", "world_size"]

WAIT_FOR_JOB = timedelta(days=30)  # a generation phase on a large dataset takes hours; rank 0 may be slow
_control = None


def launched() -> bool:
    """True under a multi-process launch (WORLD_SIZE > 1)."""
    return world_size() > 1


def _group():
    """The control group, set up once on every rank (collective: every rank must call it)."""
    global _control
    if _control is None:
        import torch.distributed as dist
        from accelerate import PartialState

        PartialState()  # the default group from the launcher's environment, as the Trainer will use it
        _control = dist.new_group(backend="gloo", timeout=WAIT_FOR_JOB)
    return _control


def _broadcast(job: TrainJob | None) -> TrainJob | None:
    import torch.distributed as dist

    box = [job.to_json() if job is not None else None]
    dist.broadcast_object_list(box, src=0, group=_group())
    return TrainJob.from_json(box[0]) if box[0] is not None else None


def send(job: TrainJob | None) -> None:
    """Rank 0: hand ``job`` to the other ranks (None: the run is over, they exit)."""
    _broadcast(job)


def follow() -> None:
    """Ranks > 0: train each job rank 0 sends, until it says the run is over.

    Every rank sees the same (all-reduced) logged loss, so all of them stop at the same step when it is
    not finite; rank 0 reports it, and the others wait for its next word.
    """
    assert not is_main_process()
    while (job := _broadcast(None)) is not None:
        try:
            run_job(job, None, on_step=lambda step, loss: check_loss(loss, step, job.label))
        except NonFiniteError:
            continue


def check_layout(config) -> None:
    """Rank 0, before a job: settings that a launcher of the user's own cannot honour are refused."""
    from selftaught.config import ConfigError

    if config.distributed.accelerate_config:
        raise ConfigError(
            "distributed.accelerate_config applies to the processes selftaught launches (train_processes > 1); "
            "under your own launcher give it to the launcher: accelerate launch --config_file "
            f"{config.distributed.accelerate_config} -m selftaught.cli run ..."
        )
    if config.train.objective == "rpo":
        raise ConfigError(
            "train.objective=rpo trains in one process: run selftaught without torchrun / accelerate launch"
        )
    if config.train.batch_size % world_size():
        raise ConfigError(
            f"train.batch_size ({config.train.batch_size}) must divide by the launch's {world_size()} processes: "
            "each takes an equal share of the same global batch"
        )


def start() -> None:
    """Join the launch's process groups (every rank, before anything else)."""
    _group()
