"""Where a phase's generation chunks run: in this process, or over a pool of Ray actors.

The unit of work is one chunk of a phase (`ChunkJob`): its prompts, budgets and its `Sampling` (with
the chunk's own seed). A chunk gives the same completions on any worker, so a phase's output does not
depend on how many workers ran it, and a resumed phase sends only its unfinished chunks. Workers only
generate: the driver grades each finished chunk and writes it to the run directory, so one process
writes the run.

Why Ray Core actors (`ray.util.ActorPool`) rather than Ray Data's ``map_batches`` or its vLLM
processor: Ray Data cuts a dataset into blocks of its own choosing and streams rows back, while a
STaR phase needs whole chunks back (each with its seed, saved atomically the moment it is done, so a
kill loses at most one chunk per worker) and a model replica that stays loaded from one phase's
chunks to the next. An actor pool is the primitive Ray Data itself schedules on; each actor holds a
generator (``hf``/``sampler`` on a CPU or GPU, or one vLLM engine spanning ``gpus_per_worker`` GPUs).
An actor that dies is restarted by Ray and its chunk retried (``max_restarts``, ``max_task_retries``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from selftaught.config import Config, ConfigError
from selftaught.generation.sampling import Sampling

RESTARTS = 3  # a worker process that dies is restarted this many times, its chunk retried each time


@dataclass(frozen=True)
class ChunkJob:
    """One chunk of a phase: ``sampling.num_samples`` completions for each prompt, drawn with ``sampling.seed``."""

    index: int
    prompts: list[str]
    max_new_tokens: list[int]
    sampling: Sampling

    def run(self, generator) -> list[list[str]]:
        return generator.complete(self.prompts, self.max_new_tokens, self.sampling)


@dataclass(frozen=True)
class ChunkResult:
    index: int
    completions: list[list[str]]  # `Completion`s: each says whether the token budget cut it
    worker_pid: int  # which process made it (a restarted worker has a new one)


class LocalWorkers:
    """Chunks run one after another in this process, on a generator kept between phases."""

    def __init__(self, config: Config):
        self.config = config
        self._loaded: tuple[str, object] | None = None
        self.count = 1

    def generator(self, model_path: Path | str):
        from selftaught.generation import make_generator

        if self._loaded is None or self._loaded[0] != str(model_path):
            self._loaded = None  # free the previous model before loading the next
            self._loaded = (str(model_path), make_generator(model_path, self.config))
        return self._loaded[1]

    def load(self, model_path: Path | str) -> None:
        self.generator(model_path)

    def map(self, model_path: Path | str, jobs: list[ChunkJob]) -> Iterator[ChunkResult]:
        for job in jobs:
            yield ChunkResult(job.index, job.run(self.generator(model_path)), os.getpid())

    def release(self) -> None:
        """Drop the generator and hand its memory back (the caching allocator keeps GPU memory otherwise)."""
        from selftaught.models import free_memory

        self._loaded = None
        free_memory()


class _Worker:
    """A Ray actor's body: one generator, reloaded only when the model changes."""

    def __init__(self, config: dict):
        from selftaught.config import config_from_dict

        self.local = LocalWorkers(config_from_dict(config))

    def load(self, model_path: str) -> int:
        self.local.load(model_path)
        return os.getpid()

    def run(self, model_path: str, job: ChunkJob) -> ChunkResult:
        return next(self.local.map(model_path, [job]))

    def pid(self) -> int:
        return os.getpid()

    def close(self) -> None:
        self.local.release()


def import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError("distributed.generation_workers > 1 needs Ray: pip install 'selftaught[ray]'") from None
    return ray


def start_ray(address: str = ""):
    """Join ``address``'s cluster, or start a local Ray on this machine; a no-op if already connected."""
    ray = import_ray()
    if not ray.is_initialized():
        import logging

        ray.init(
            address=address or None,
            include_dashboard=False,
            log_to_driver=False,  # workers' library chatter; their errors come back with the failed chunk
            logging_level=logging.WARNING,
            configure_logging=True,
        )
    return ray


class RayWorkers:
    """``count`` Ray actors, each holding one model replica; chunks go to whichever is free."""

    def __init__(self, config: Config):
        self.config, self.count = config, config.distributed.generation_workers
        self.ray = start_ray(config.distributed.ray_address)
        self._actors: list = []
        self._model: str | None = None

    def _options(self) -> dict:
        cluster_gpus = self.ray.cluster_resources().get("GPU", 0)
        gpus = self.config.distributed.gpus_per_worker if cluster_gpus else 0
        if gpus * self.count > cluster_gpus > 0:  # Ray would wait for them forever
            raise ConfigError(
                f"distributed.generation_workers ({self.count}) x gpus_per_worker ({gpus:g}) needs more GPUs than "
                f"the Ray cluster has ({cluster_gpus:g})"
            )
        return {
            "num_cpus": 1,
            "num_gpus": gpus,
            "max_restarts": RESTARTS,
            "max_task_retries": RESTARTS,
        }

    def load(self, model_path: Path | str) -> list[int]:
        """Start the actors (if released) and have each load ``model_path``; returns their process ids."""
        if not self._actors:
            actor = self.ray.remote(_Worker).options(**self._options())
            self._actors = [actor.remote(_worker_config(self.config)) for _ in range(self.count)]
        self._model = _absolute(model_path)  # an actor on another node starts in another folder
        if self.config.generation.backend == "vllm":
            from selftaught.generation.vllm import merged_weights

            merged_weights(self._model, self.config.model)  # a LoRA checkpoint merged here, once: one writer
        return self.ray.get([a.load.remote(self._model) for a in self._actors])

    def map(self, model_path: Path | str, jobs: list[ChunkJob]) -> Iterator[ChunkResult]:
        """Each job's result as soon as it is done (any order)."""
        from ray.util import ActorPool

        if not self._actors or self._model != _absolute(model_path):
            self.load(model_path)
        pool = ActorPool(self._actors)
        path = self._model
        yield from pool.map_unordered(lambda actor, job: actor.run.remote(path, job), jobs)

    def pids(self) -> list[int]:
        return self.ray.get([a.pid.remote() for a in self._actors])

    def release(self) -> None:
        """Stop the actors, their models' memory freed first (training needs it); `load` starts new ones."""
        if self._actors:
            try:  # ray.kill alone returns before the memory is free
                self.ray.get([a.close.remote() for a in self._actors], timeout=120)
            except Exception:  # noqa: BLE001  (a dead actor has nothing left to free)
                pass
        for actor in self._actors:
            self.ray.kill(actor)
        self._actors, self._model = [], None


def _absolute(path: Path | str) -> str:
    from selftaught.models import absolute_model_path

    return absolute_model_path(path)


def _worker_config(config: Config) -> dict:
    """The config an actor rebuilds: training settings with local paths are not its business."""
    data = config.to_dict()
    data["distributed"]["accelerate_config"] = ""
    return data


def make_workers(config: Config) -> LocalWorkers | RayWorkers:
    """One process, or a Ray pool when ``distributed.generation_workers`` > 1 or a cluster is named."""
    d = config.distributed
    return RayWorkers(config) if d.generation_workers > 1 or d.ray_address else LocalWorkers(config)
