"""The STaR loop (Zelikman et al. 2022, Algorithm 1), top to bottom.

For n = 1..N, with M_{n-1} the previous iteration's model (M0 for n = 1):
  1. generate  a rationale for every training question with M_{n-1};
  2. filter    keep the samples whose answer is right (and whose steps verify, if asked);
  3. rationalize  retry the rest with the answer as a hint; keep what now reaches it, stored unhinted;
  4. train     fine-tune the ORIGINAL M0 (paper) or M_{n-1} on the kept set, steps growing x1.2
               (train.objective=rpo: DPO of the kept over the wrong samples of the same question, plus NLL);
  5. evaluate  greedy accuracy on the held-out test set, per bucket.
Each phase records completion in the run directory, so ``resume`` redoes only unfinished work.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from pathlib import Path

from selftaught import rundir, star
from selftaught.common import atomic
from selftaught.common.ui import SILENT, Reporter
from selftaught.common.versions import library_versions
from selftaught.config import Config
from selftaught.generation.sampling import Sampling
from selftaught.generation.workers import ChunkJob, make_workers
from selftaught.hub.modelcard import write_iteration_cards
from selftaught.models import absolute_model_path
from selftaught.models.gguf import gguf_origin
from selftaught.reporting.tracking import Tracker
from selftaught.rundir import IterationMetrics, Summary, prepare_run_dir, release_run_dir
from selftaught.rundir.layout import StepDir
from selftaught.samples import Record, Sample, read_pairs, read_samples, write_rows
from selftaught.tasks import Example, Task, make_task
from selftaught.tasks.stops import NO_STOP
from selftaught.training import ranks
from selftaught.training.base_model import ensure_base_model
from selftaught.training.finite import NonFiniteError, check_loss
from selftaught.training.launch import train_in_processes
from selftaught.training.phase import TrainJob, run_job
from selftaught.training.rpo import nll_only
from selftaught.verifier.pairs import rpo_pairs


class StarError(RuntimeError):
    """The loop cannot go on (e.g. nothing was kept to train on); the message says what to check."""


class NothingToTrain(StarError):
    """An iteration's filter kept no sample, so there is no model to train (the model stays as it was)."""


def load_data(config: Config) -> tuple[Task, list[Example], list[Example]]:
    """The task and its train and test examples (bad settings or data raise here)."""
    task = make_task(config)
    return task, task.load("train"), task.load("test")


class Engine:
    """Holds what every phase needs: config, task, data, run directory, M0's path."""

    def __init__(self, config: Config, run: rundir.RunDir, reporter: Reporter, data: tuple | None = None):
        self.config, self.run, self.reporter = config, run, reporter
        self.task, self.train_set, self.test_set = data or load_data(config)
        self.base_path = ensure_base_model(config, self.task, reporter)
        self.workers = make_workers(config)  # this process, or a pool of Ray actors
        # what ran (metrics.json): a phase finished by an earlier session counts as configured now
        self.used = {"generation_workers": self.workers.count, "train_processes": config.distributed.train_processes}
        self.stop = self.task.stop() if config.generation.stop_at_answer else NO_STOP

    def sample(
        self, model_path, examples: list[Example], hint: bool, label: str, chunks: Path, greedy: bool = False
    ) -> list[Sample]:
        """Generate and grade completions (``num_samples`` each, or one greedy) per example, prompted as
        `few_shot_for` says for ``model_path``.

        Work goes in fixed chunks of ``generation.chunk_size`` examples, each saved atomically under
        ``chunks``; a resumed phase reloads finished chunks. Each chunk has its own seed, so the rows
        are the same whether or not the phase was interrupted, and on however many workers it ran.
        """
        g = self.config.generation
        sampling = Sampling.from_config(g, self.config.seed, self.stop, greedy=greedy)
        num_samples = sampling.num_samples
        few_shot = self.few_shot_for(model_path)
        parts = [examples[start : start + g.chunk_size] for start in range(0, len(examples), g.chunk_size)]
        paths = [rundir.chunk_file(chunks, k) for k in range(len(parts))]
        jobs = [
            ChunkJob(
                k,
                [self.task.prompt(ex, hint=hint, few_shot=few_shot) for ex in part],
                [self.task.max_new_tokens(ex) for ex in part],
                sampling.reseeded(7919 * k),
            )
            for k, part in enumerate(parts)
            if not paths[k].is_file()
        ]
        self.workers.load(model_path)  # before the progress bar, so a bad model fails cleanly
        with self.reporter.phase(label, total=len(examples) * num_samples) as advance:
            advance((len(examples) - sum(len(job.prompts) for job in jobs)) * num_samples)
            for result in self.workers.map(model_path, jobs):  # in any order: each chunk is its own file
                part = parts[result.index]
                graded = [
                    star.grade(self.task, ex, text, hint, j)
                    for ex, texts in zip(part, result.completions)
                    for j, text in enumerate(texts)
                ]
                write_rows(paths[result.index], graded)
                advance(len(part) * num_samples)
        return [row for path in paths for row in read_samples(path)]

    def few_shot_for(self, model_path: Path | str) -> bool:
        """Whether ``model_path`` gets the few-shot prefix: M0 always; a fine-tuned model unless
        ``loop.few_shot_for_trained`` is off, so that it is prompted as it was trained."""
        return Path(model_path) == Path(self.base_path) or self.config.loop.few_shot_for_trained

    def evaluate(self, model_path: Path | str, folder: StepDir, label: str, n: int) -> IterationMetrics:
        """Greedy accuracy on the test set; writes the graded samples and returns the metrics."""
        rows = self.sample(model_path, self.test_set, False, label, self.run.scratch(folder, "evaluate"), greedy=True)
        write_rows(folder.eval_samples, rows)
        accuracy, by_bucket = star.accuracy_by_bucket(self.task, self.test_set, rows)
        return IterationMetrics(iteration=n, accuracy=accuracy, accuracy_by_bucket=by_bucket)

    def train(self, init_path: Path | str, steps: int, folder: StepDir, label: str) -> None:
        """Fine-tune the model at ``init_path`` on the step's training data; save its checkpoint."""
        self.workers.release()  # training needs the memory more than loaded generators
        scratch = self.run.scratch(folder, "train")  # the Trainer deletes old checkpoints in there
        self._match_trainer_layout(scratch)
        job = TrainJob(
            str(init_path), str(folder.train_data), steps, str(scratch), str(folder.logs), label,
            self.config.to_dict(), str(folder.pairs), str(self.base_path),  # rpo: its pairs; reference M0
        )  # fmt: skip
        with self.reporter.phase(label, total=steps) as advance:

            def on_step(step: int, loss: float | None) -> None:
                check_loss(loss, step, label)
                advance(1)

            def write(tmp: Path) -> None:
                log, self.used["train_processes"] = self._train(job, tmp, on_step, folder.logs)
                atomic.atomic_write_jsonl(folder.train_log, log)

            try:
                atomic.atomic_save_dir(folder.checkpoint, write)
            except NonFiniteError:
                rundir.remove_scratch(self.run.root, scratch)  # its checkpoints hold the diverged weights
                raise

    def _match_trainer_layout(self, scratch: Path) -> None:
        """Trainer checkpoints resume only on the process layout that wrote them (FSDP and DeepSpeed shard
        their optimizer states by process): after a change of layout, the phase starts over."""
        d = self.config.distributed
        processes = ranks.world_size() if ranks.launched() else d.train_processes
        layout = {"train_processes": processes, "accelerate_config": d.accelerate_config}
        path = rundir.trainer_layout_file(scratch)
        if path.is_file() and rundir.read_json(path) != layout and any(scratch.glob("checkpoint-*")):
            self.reporter.log(f"{scratch}: Trainer checkpoints from another process layout; training starts over")
            for old in scratch.glob("checkpoint-*"):
                shutil.rmtree(old)
        scratch.mkdir(parents=True, exist_ok=True)
        atomic.atomic_write_json(path, layout)

    def _train(self, job: TrainJob, out_dir: Path, on_step, logs: Path) -> tuple[list[dict], int]:
        """Train here, on the ranks of the user's own launch, or on processes we launch; (log, processes)."""
        d = self.config.distributed
        if ranks.launched():
            ranks.check_layout(self.config)
            ranks.send(job)
            return run_job(job, out_dir, on_step), ranks.world_size()
        if d.train_processes > 1:
            log_path = rundir.train_processes_log(logs)
            return train_in_processes(job, out_dir, d.train_processes, d.accelerate_config, log_path, on_step)
        return run_job(job, out_dir, on_step), 1


def _evaluate_base(engine: Engine) -> IterationMetrics:
    folder = engine.run.base

    def work():
        engine.run.write_metrics(folder, engine.evaluate(engine.base_path, folder, "M0: evaluate", 0))

    engine.run.phase(folder, "evaluate", work)
    return engine.run.metrics(folder)


class Iteration:
    """Iteration n's steps; each is skipped if a previous attempt finished it (the run directory records it)."""

    def __init__(self, engine: Engine, n: int):
        self.engine, self.n, self.config, self.run = engine, n, engine.config, engine.run
        self.folder = engine.run.iteration(n)
        self.previous = engine.base_path if n == 1 else engine.run.iteration(n - 1).checkpoint  # M_{n-1}
        self.generated = self.folder.generated
        self.records: list[Record] = []

    def generate(self) -> list[Sample]:
        """1. M_{n-1} writes a rationale and an answer for every training question."""

        def work() -> None:
            chunks = self.run.scratch(self.folder, "generate")
            label = f"iter {self.n}: generate"
            write_rows(self.generated, self.engine.sample(self.previous, self.engine.train_set, False, label, chunks))

        self.run.phase(self.folder, "generate", work)
        # plain rows only: after a kill, rationalize redoes its work and must not find its hinted rows twice
        return [row for row in read_samples(self.generated) if not row.hinted]

    def filter(self, rows: list[Sample]) -> list[Example]:
        """2. Keep the samples whose answer is right (and whose steps verify); returns the questions none solved."""
        return star.needs_rationalization(self.engine.train_set, rows, self.config.loop.filter)

    def rationalize(self, rows: list[Sample], unsolved: list[Example]) -> list[Sample]:
        """3. Retry the unsolved questions with the answer as a hint; returns every sample of the iteration."""

        def work() -> None:
            hinted = []
            if self.config.loop.rationalization and unsolved:
                chunks = self.run.scratch(self.folder, "rationalize")
                label = f"iter {self.n}: rationalize"
                hinted = self.engine.sample(self.previous, unsolved, True, label, chunks)
            write_rows(self.generated, rows + hinted)

        self.run.phase(self.folder, "rationalize", work)
        return read_samples(self.generated)

    def train(self, rows: list[Sample]) -> None:
        """4. Fine-tune M0 (paper) or M_{n-1} on the kept samples, unhinted (rpo: over wrong ones, `training.rpo`)."""
        cfg, engine = self.config, self.engine
        few_shot = cfg.loop.few_shot_in_training
        if cfg.loop.mode == "star":
            self.records = star.training_records(engine.task, engine.train_set, rows, cfg.loop.filter, few_shot)
        else:  # the direct fine-tuning baseline: question -> answer
            self.records = star.direct_records(engine.task, engine.train_set, few_shot)
        if not self.folder.train_data.is_file():
            write_rows(self.folder.train_data, self.records)
        if cfg.train.objective == "rpo" and not self.folder.pairs.is_file():  # chosen: the records; rejected: wrong
            write_rows(self.folder.pairs, rpo_pairs(self.records, rows, cfg.loop.filter, self.n))
        if not self.records:
            raise NothingToTrain(
                f"iteration {self.n}: no rationale reached the right answer, so there is nothing to train on; "
                "check the few-shot prompt and answer extraction with `selftaught eval`"
            )
        init = engine.base_path if cfg.loop.restart_from_base else self.previous
        label = f"iter {self.n}: train"
        self.run.phase(
            self.folder, "train", lambda: engine.train(init, cfg.train.steps_for(self.n), self.folder, label)
        )

    def evaluate(self, rows: list[Sample]) -> IterationMetrics:
        """5. Greedy accuracy of the new model on the test set; writes its metrics and the model card."""
        cfg, engine, folder = self.config, self.engine, self.folder

        def work() -> None:
            metrics = engine.evaluate(folder.checkpoint, folder, f"iter {self.n}: evaluate", self.n)
            self._count(metrics, rows)
            self.run.write_metrics(folder, metrics)

        self.run.phase(folder, "evaluate", work)
        metrics = self.run.metrics(folder)
        metrics.seconds = self.run.phases(folder)  # includes evaluate's own time
        metrics.peak_rss_mib = self.run.peak_memory(folder)  # this process's peak, phase by phase
        self.run.write_metrics(folder, metrics)
        write_iteration_cards(cfg, engine.task, engine.test_set, folder, self.n, metrics, engine.base_path)
        return metrics

    def _count(self, metrics: IterationMetrics, rows: list[Sample]) -> None:
        """What the iteration generated, kept and trained on, into ``metrics``."""
        metrics.num_questions = len(self.engine.train_set)
        metrics.num_kept = sum(r.source == "generated" for r in self.records)
        metrics.num_rationalized = sum(r.source == "rationalized" for r in self.records)
        metrics.num_train_examples = len(self.records)
        metrics.num_kept_unverified = sum(r.correct and not r.verified for r in rows)
        metrics.num_rejected = sum(not star.is_kept(r, self.config.loop.filter) for r in rows)
        metrics.train_steps = self.config.train.steps_for(self.n)
        if self.config.train.objective == "rpo":  # an SFT iteration's metrics stay as they always were
            pairs = read_pairs(self.folder.pairs)
            metrics.train_objective, metrics.num_pairs = "rpo", len(pairs)
            metrics.num_nll_only = len(nll_only(self.records, pairs))
        metrics.distributed = dict(self.engine.used)


def _iteration(engine: Engine, n: int) -> IterationMetrics:
    """One outer iteration of STaR, as the paper's Algorithm 1 reads."""
    step = Iteration(engine, n)
    rows: list[Sample] = []  # loop.mode=direct generates nothing
    if engine.config.loop.mode == "star":
        rows = step.generate()
        rows = step.rationalize(rows, step.filter(rows))
    step.train(rows)
    return step.evaluate(rows)


def saturated(accuracies: list[float], patience: int, min_improvement: float) -> bool:
    """True when each of the last ``patience`` iterations gained less than ``min_improvement``, or when
    the last accuracy leaves less than ``min_improvement`` to gain (no further iteration could count).

    >>> saturated([0.5, 0.9, 0.901], 1, 0.005)
    True
    >>> saturated([0.5, 0.9], 1, 0.005)
    False
    >>> saturated([0.5, 0.998], 1, 0.005)  # 0.2 points left < 0.5
    True
    >>> saturated([0.5, 0.998], 0, 0.005)  # patience 0: never stop early
    False
    """
    if patience <= 0 or len(accuracies) < 2:
        return False
    if 1.0 - accuracies[-1] < min_improvement:
        return True
    if len(accuracies) <= patience:
        return False
    recent = [b - a for a, b in zip(accuracies[-patience - 1 : -1], accuracies[-patience:])]
    return all(gain < min_improvement for gain in recent)


def run_star(
    config: Config | None = None,
    out_dir: str | Path = "runs/default",
    resume: bool = False,
    reporter: Reporter = SILENT,
    force: bool = False,
) -> Summary | None:
    """Run (or resume) STaR and return its `Summary` (what ``summary.json`` holds); None on the
    follower ranks of a user's own multi-process launch (rank 0 runs the loop and returns it).

    A new run uses ``config`` (default: `Config()`); a resumed run uses the saved config, or ``config``
    if it equals the saved one (or ``force``, for keys that cannot invalidate finished work).
    """
    if ranks.launched():  # every rank of a user's torchrun / accelerate launch runs this same call
        ranks.start()
        if not ranks.is_main_process():
            ranks.follow()  # train when rank 0 says, until it says the run is over
            return None
        try:
            summary = _run_star(config, out_dir, resume, reporter, force)
        except BaseException:
            with contextlib.suppress(Exception):  # the error that ended the run is the one to report
                ranks.send(None)
            raise
        ranks.send(None)
        return summary
    return _run_star(config, out_dir, resume, reporter, force)


def _run_star(config: Config | None, out_dir: str | Path, resume: bool, reporter: Reporter, force: bool) -> Summary:
    data = None
    if not resume:  # bad task settings or data fail here, before the run directory exists
        config = config or Config()
        rundir.check_fresh(out_dir)
        data = load_data(config)
    config, run = prepare_run_dir(config, out_dir, resume, force)
    try:
        return _run(config, run, reporter, data)
    finally:
        release_run_dir(run)


def _run(config: Config, run: rundir.RunDir, reporter: Reporter, data: tuple | None) -> Summary:
    start = time.perf_counter()
    tracker = Tracker(config.report_to, run.root, config.to_dict())  # a missing tracker fails before any work
    engine = None
    try:
        engine = Engine(config, run, reporter, data)
        summary = Summary(
            task=config.task.name,
            mode=config.loop.mode,
            base_model=absolute_model_path(engine.base_path),
            base_model_gguf=gguf_origin(engine.base_path),  # M0 converted from a GGUF file: which, which digest
            versions=library_versions(),
        )
        return _iterations(engine, summary, tracker, start)
    finally:
        if engine is not None:
            engine.workers.release()
        tracker.close()


def _iterations(engine: Engine, summary: Summary, tracker: Tracker, start: float) -> Summary:
    config, run, reporter = engine.config, engine.run, engine.reporter
    loop = config.loop
    summary.base = _evaluate_base(engine)
    tracker.log_iteration(summary.base)
    for n in range(1, loop.iterations + 1):
        tracker.log_iteration(_iteration(engine, n))
        run.write_summary(summary)
        reporter.log(f"iteration {n}: accuracy {summary.last_accuracy():.1%}")
        accuracies = [row.accuracy for row in summary.rows()]
        if n < loop.iterations and saturated(accuracies, loop.patience, loop.min_improvement):
            reporter.log(
                f"accuracy saturated (gain or headroom below {loop.min_improvement:.1%}, patience {loop.patience}); "
                f"stopping after iteration {n}"
            )
            summary.stopped_early = n
            break
    if loop.verifier:  # V-STaR: a verifier on the iterations' own right and wrong samples (selftaught.verifier)
        from selftaught.verifier.train import train_verifier

        engine.workers.release()
        summary.verifier = train_verifier(config, run.root, reporter=reporter, examples=engine.train_set)
    summary.seconds_this_session = round(time.perf_counter() - start, 1)
    return run.write_summary(summary)
