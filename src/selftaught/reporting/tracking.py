"""Experiment trackers (``report_to``): STaR's per-iteration metrics, next to the Trainer's own logs.

``report_to`` names zero or more of tensorboard, wandb, mlflow, trackio (comma-separated; "none" = off).
Each tracker's package is imported only when chosen, so none of them is a dependency. The Trainer gets
the same list (`TrainingArguments.report_to`), so its loss / learning-rate logs land in the same place.

TensorBoard writes under ``RUN/logs`` (STaR metrics, x = iteration) and ``RUN/iter_NNN/logs`` (the
Trainer's, x = optimizer step): ``tensorboard --logdir RUN`` shows both.
"""

from __future__ import annotations

import os
from pathlib import Path

from selftaught.config.checks import parse_report_to
from selftaught.rundir import IterationMetrics, RunDir


class TrackerError(ValueError):
    """A chosen tracker cannot be used (package missing); the message says what to install."""


def star_scalars(metrics: IterationMetrics) -> dict[str, float]:
    """The numbers of one iteration's metrics as flat ``star/...`` scalars.

    >>> star_scalars(IterationMetrics(1, 0.5, {"1": 1.0}, num_kept=3, seconds={"train": 2.0}))
    {'star/accuracy': 0.5, 'star/accuracy_by_bucket/1': 1.0, 'star/num_kept': 3.0, 'star/seconds/train': 2.0}
    """
    flat = {"star/accuracy": float(metrics.accuracy)}
    for bucket, value in metrics.accuracy_by_bucket.items():
        flat[f"star/accuracy_by_bucket/{bucket}"] = float(value)
    for key, value in metrics.counts().items():
        flat[f"star/{key}"] = float(value)
    for phase, seconds in (metrics.seconds or {}).items():
        flat[f"star/seconds/{phase}"] = float(seconds)
    for phase, mib in (metrics.peak_rss_mib or {}).items():
        flat[f"star/peak_rss_mib/{phase}"] = float(mib)
    return flat


def _import(name: str):
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        raise TrackerError(f"report_to={name} needs the {name} package: pip install 'selftaught[{name}]'") from None


class _TensorBoard:
    def __init__(self, root: Path, run_name: str, config: dict):
        _import("tensorboard")
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(RunDir(root).logs))

    def log(self, scalars: dict[str, float], iteration: int) -> None:
        for tag, value in scalars.items():
            self.writer.add_scalar(tag, value, iteration)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class _Wandb:
    def __init__(self, root: Path, run_name: str, config: dict):
        self.wandb = _import("wandb")
        project = os.environ.get("WANDB_PROJECT", "selftaught")
        # the Trainer's WandbCallback reuses this run (it calls init only when wandb.run is None)
        self.run = self.wandb.init(project=project, name=run_name, dir=str(root), config=config)
        self.run.define_metric("star/iteration")
        self.run.define_metric("star/*", step_metric="star/iteration")

    def log(self, scalars: dict[str, float], iteration: int) -> None:
        self.run.log({**scalars, "star/iteration": iteration})

    def close(self) -> None:
        self.run.finish()


class _MLflow:
    def __init__(self, root: Path, run_name: str, config: dict):
        self.mlflow = _import("mlflow")
        # the Trainer's MLflowCallback logs into the active run and leaves it open for us to end
        self.mlflow.start_run(run_name=run_name)
        self.mlflow.log_params({"config": str(config)[:6000]})

    def log(self, scalars: dict[str, float], iteration: int) -> None:
        self.mlflow.log_metrics(scalars, step=iteration)

    def close(self) -> None:
        self.mlflow.end_run()


class _Trackio:
    """trackio has one current run, and the Trainer's TrackioCallback starts and finishes its own; so each
    iteration's metrics reopen this run (``resume="allow"``) and close it again."""

    def __init__(self, root: Path, run_name: str, config: dict):
        self.trackio = _import("trackio")
        self.project, self.name = os.environ.get("TRACKIO_PROJECT", "selftaught"), run_name
        self.trackio.init(project=self.project, name=run_name, config=config)
        self.trackio.finish()

    def log(self, scalars: dict[str, float], iteration: int) -> None:
        self.trackio.init(project=self.project, name=self.name, resume="allow")
        self.trackio.log({**scalars, "star/iteration": iteration}, step=iteration)
        self.trackio.finish()

    def close(self) -> None:
        pass


SINKS = {"tensorboard": _TensorBoard, "wandb": _Wandb, "mlflow": _MLflow, "trackio": _Trackio}


class Tracker:
    """Sends each finished iteration's metrics to every chosen tracker; a no-op for ``report_to=none``."""

    def __init__(self, report_to: str, root: str | Path, config: dict | None = None):
        root = Path(root)
        self.names = parse_report_to(report_to)
        self.sinks = [SINKS[name](root, root.resolve().name, config or {}) for name in self.names]

    def log_iteration(self, metrics: IterationMetrics) -> None:
        scalars = star_scalars(metrics)
        for sink in self.sinks:
            sink.log(scalars, metrics.iteration)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()
        self.sinks = []
