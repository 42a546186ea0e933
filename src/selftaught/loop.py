"""The STaR loop (Zelikman et al. 2022, Algorithm 1), top to bottom.

For n = 1..N, with M_{n-1} the previous iteration's model (M0 for n = 1):
  1. generate  a rationale for every training question with M_{n-1};
  2. filter    keep the samples whose answer is right (and whose steps verify, if asked);
  3. rationalize  retry the rest with the answer as a hint; keep what now reaches it, stored unhinted;
  4. train     fine-tune the ORIGINAL M0 (paper) or M_{n-1} on the kept set, steps growing x1.2;
  5. evaluate  greedy accuracy on the held-out test set, per bucket.
Each phase records completion in the run directory, so ``resume`` redoes only unfinished work.
"""

from __future__ import annotations

import time
from pathlib import Path

from selftaught import runconfig, runs, star
from selftaught.bounded import printable
from selftaught.config import Config, ConfigError, config_from_dict
from selftaught.generation import make_generator
from selftaught.modelcard import absolute_model_path, write_iteration_cards
from selftaught.models import load_model, save_model, scheme_name
from selftaught.tasks import Example, Task, make_task
from selftaught.tasks.stops import NO_STOP
from selftaught.tracking import Tracker, parse_report_to
from selftaught.training.base_model import ensure_base_model
from selftaught.training.finite import NonFiniteError, check_loss, check_weights
from selftaught.training.sft import add_lora, encode_pairs, train_sft
from selftaught.ui import SILENT, Reporter
from selftaught.versions import library_versions


class StarError(RuntimeError):
    """The loop cannot go on (e.g. nothing was kept to train on); the message says what to check."""


def load_data(config: Config) -> tuple[Task, list[Example], list[Example]]:
    """The task and its train and test examples (bad settings or data raise here)."""
    task = make_task(config)
    return task, task.load("train"), task.load("test")


class Engine:
    """Holds what every phase needs: config, task, data, run directory, M0's path."""

    def __init__(self, config: Config, run: runs.RunDir, reporter: Reporter, data: tuple | None = None):
        self.config, self.run, self.reporter = config, run, reporter
        self.task, self.train_set, self.test_set = data or load_data(config)
        self.base_path = ensure_base_model(config, self.task, reporter)
        self._generator: tuple[str, object] | None = None
        self.stop = self.task.stop() if config.generation.stop_at_answer else NO_STOP

    def generator(self, model_path: Path | str):
        """A generator for the model at ``model_path`` (loaded once, reused across phases)."""
        if self._generator is None or self._generator[0] != str(model_path):
            self._generator = None  # free the previous model before loading the next
            self._generator = (str(model_path), make_generator(model_path, self.config))
        return self._generator[1]

    def sample(
        self, model_path, examples: list[Example], hint: bool, label: str, chunks: Path, greedy: bool = False
    ) -> list[dict]:
        """Generate and grade completions (``num_samples`` each, or one greedy) per example.

        Work goes in fixed chunks of ``generation.chunk_size`` examples, each saved atomically under
        ``chunks``; a resumed phase reloads finished chunks. Each chunk has its own seed, so the rows
        are the same whether or not the phase was interrupted.
        """
        g = self.config.generation
        num_samples, temperature = (1, 0.0) if greedy else (g.num_samples, g.temperature)
        rows: list[dict] = []
        self.generator(model_path)  # load before the progress bar, so a bad model fails cleanly
        with self.reporter.phase(label, total=len(examples) * num_samples) as advance:
            for k, start in enumerate(range(0, len(examples), g.chunk_size)):
                path = chunks / f"chunk_{k:05d}.jsonl"
                part = examples[start : start + g.chunk_size]
                if not path.is_file():
                    prompts = [self.task.prompt(ex, hint=hint) for ex in part]
                    budgets = [self.task.max_new_tokens(ex) for ex in part]
                    seed = self.config.seed + 7919 * k
                    outs = self.generator(model_path).complete(
                        prompts, budgets, num_samples, temperature, g.top_p, seed, stop=self.stop
                    )
                    graded = [
                        star.grade(self.task, ex, text, hint, j)
                        for ex, texts in zip(part, outs)
                        for j, text in enumerate(texts)
                    ]
                    runs.atomic_write_jsonl(path, graded)
                rows += runs.read_jsonl(path, runs.ROW_KEYS)
                advance(len(part) * num_samples)
        return rows

    def evaluate(self, model_path: Path | str, folder: Path, label: str) -> dict:
        """Greedy accuracy on the test set; writes ``eval.jsonl`` and returns the metrics."""
        rows = self.sample(model_path, self.test_set, False, label, self.run.scratch(folder, "evaluate"), greedy=True)
        runs.atomic_write_jsonl(folder / "eval.jsonl", rows)
        accuracy, by_bucket = star.accuracy_by_bucket(self.task, self.test_set, rows)
        return {"accuracy": accuracy, "accuracy_by_bucket": by_bucket}

    def train(self, init_path: Path | str, records: list[dict], steps: int, folder: Path, label: str) -> None:
        """Fine-tune the model at ``init_path`` on ``records``; save to ``folder/checkpoint``."""
        self._generator = None  # training needs the memory more than a cached generator
        cfg, t = self.config, self.config.train
        lm = load_model(init_path, cfg.model)
        model = lm.model
        lora = cfg.model.lora
        if lora.enabled:
            model = add_lora(model, lora.r, lora.alpha, lora.dropout, lora.target_modules)
        pairs = [(lm.render(r["prompt"]), r["completion"]) for r in records]
        features = encode_pairs(
            lm.tokenizer, lm.scheme, pairs, t.max_length, cfg.model.base.max_period, cfg.seed, lm.add_special_tokens
        )
        scratch = self.run.scratch(folder, "train")  # the Trainer deletes old checkpoints in there
        with self.reporter.phase(label, total=steps) as advance:

            def on_step(step: int, loss: float | None) -> None:
                check_loss(loss, step, label)
                advance(1)

            try:
                log = train_sft(
                    model, features, lm.tokenizer.pad_token_id, scratch, steps, t, cfg.seed, on_step=on_step,
                    report_to=parse_report_to(cfg.report_to), logs_dir=folder / "logs",
                )  # fmt: skip
                check_weights(model, label)
            except NonFiniteError:
                runs.remove_scratch(self.run.root, scratch)  # its checkpoints hold the diverged weights
                raise
        runs.atomic_write_jsonl(folder / "train_log.jsonl", log)
        # an adapter is saved on its own when its base is a plain model folder; otherwise merged
        # (recorded as an absolute path, so the adapter loads from any directory)
        adapter_base = absolute_model_path(init_path) if lora.enabled and not _is_adapter(init_path) else None
        if lora.enabled and adapter_base is None:
            model = model.merge_and_unload()

        def write(tmp: Path) -> None:
            save_model(model, lm.tokenizer, scheme_name(lm.scheme), tmp, base_model=adapter_base)
            if adapter_base and lora.save_merged:
                save_model(model.merge_and_unload(), lm.tokenizer, scheme_name(lm.scheme), tmp / "merged")

        runs.atomic_save_dir(folder / "checkpoint", write)


def _is_adapter(path: Path | str) -> bool:
    return (Path(str(path)) / "adapter_config.json").is_file()


def _evaluate_base(engine: Engine) -> dict:
    folder = engine.run.base

    def work():
        metrics = engine.evaluate(engine.base_path, folder, "M0: evaluate")
        runs.atomic_write_json(folder / "metrics.json", {"iteration": 0, **metrics})

    engine.run.phase(folder, "evaluate", work)
    return engine.run.metrics(folder)


def _iteration(engine: Engine, n: int) -> dict:
    """One outer iteration; every phase is skipped if a previous attempt finished it."""
    cfg, run = engine.config, engine.run
    folder = run.iteration(n)
    previous = engine.base_path if n == 1 else run.iteration(n - 1) / "checkpoint"
    generated = folder / "generated.jsonl"

    if cfg.loop.mode == "star":

        def generate():
            chunks = run.scratch(folder, "generate")
            runs.atomic_write_jsonl(
                generated, engine.sample(previous, engine.train_set, False, f"iter {n}: generate", chunks)
            )

        engine.run.phase(folder, "generate", generate)

        def rationalize():
            # plain rows only: a kill after the write below must not add the hinted rows twice
            rows = [row for row in runs.read_jsonl(generated, runs.ROW_KEYS) if not row["hinted"]]
            retry = star.needs_rationalization(engine.train_set, rows, cfg.loop.filter)
            if cfg.loop.rationalization and retry:
                chunks = run.scratch(folder, "rationalize")
                rows += engine.sample(previous, retry, True, f"iter {n}: rationalize", chunks)
            runs.atomic_write_jsonl(generated, rows)

        engine.run.phase(folder, "rationalize", rationalize)
        rows = runs.read_jsonl(generated, runs.ROW_KEYS)
        records = star.training_records(
            engine.task, engine.train_set, rows, cfg.loop.filter, cfg.loop.few_shot_in_training
        )
    else:
        rows, records = [], star.direct_records(engine.task, engine.train_set, cfg.loop.few_shot_in_training)
    if not (folder / "train.jsonl").is_file():
        runs.atomic_write_jsonl(folder / "train.jsonl", records)

    steps = cfg.train.steps_for(n)
    init = engine.base_path if cfg.loop.restart_from_base else previous
    if not records:
        raise StarError(
            f"iteration {n}: no rationale reached the right answer, so there is nothing to train on; "
            "check the few-shot prompt and answer extraction with `selftaught eval`"
        )
    engine.run.phase(folder, "train", lambda: engine.train(init, records, steps, folder, f"iter {n}: train"))

    def evaluate():
        metrics = engine.evaluate(folder / "checkpoint", folder, f"iter {n}: evaluate")
        runs.atomic_write_json(
            folder / "metrics.json",
            {
                "iteration": n,
                **metrics,
                "num_questions": len(engine.train_set),
                "num_kept": sum(r["source"] == "generated" for r in records),
                "num_rationalized": sum(r["source"] == "rationalized" for r in records),
                "num_train_examples": len(records),
                "num_kept_unverified": sum(bool(r["correct"]) and not r["verified"] for r in rows),
                "num_rejected": sum(not star.is_kept(r, cfg.loop.filter) for r in rows),
                "train_steps": steps,
                "seconds": {**run.phases(folder)},
            },
        )

    engine.run.phase(folder, "evaluate", evaluate)
    metrics = run.metrics(folder)
    metrics["seconds"] = run.phases(folder)  # includes evaluate's own time
    runs.atomic_write_json(folder / "metrics.json", metrics)
    write_iteration_cards(cfg, engine.task, engine.test_set, folder, n, metrics, engine.base_path)
    return metrics


def saturated(rows: list[dict], patience: int, min_improvement: float) -> bool:
    """True when each of the last ``patience`` iterations gained less than ``min_improvement``.

    >>> saturated([{"accuracy": 0.5}, {"accuracy": 0.9}, {"accuracy": 0.901}], 1, 0.005)
    True
    >>> saturated([{"accuracy": 0.5}, {"accuracy": 0.9}], 1, 0.005)
    False
    """
    if patience <= 0 or len(rows) <= patience:
        return False
    recent = [b["accuracy"] - a["accuracy"] for a, b in zip(rows[-patience - 1 : -1], rows[-patience:])]
    return all(gain < min_improvement for gain in recent)


def prepare_run_dir(config: Config | None, out_dir: str | Path, resume: bool, force: bool = False):
    """Lock the run directory and settle the config: a new run saves it, a resumed run reuses it.

    A new run needs an absent or empty ``out_dir``. A resumed run's saved config must be complete and
    match its digest; resuming with a different ``config`` is refused with the differing keys listed,
    unless ``force``, and even then for keys that would invalidate finished work. Nothing inside the
    directory may be a symbolic link. The lock is held until `release_run_dir` or process exit.
    """
    run = runs.RunDir(out_dir)
    shown = printable(str(run.root))
    if shown != str(run.root):
        raise ConfigError(f"run directory {shown} is not valid UTF-8; use a UTF-8 name")
    if resume and not (run.root / "config.yaml").is_file():
        raise ConfigError(f"cannot resume: {shown}/config.yaml does not exist")
    if not resume:
        runconfig.check_fresh(run.root)  # before creating anything in a folder that is not ours
    try:
        run.root.mkdir(parents=True, exist_ok=True)
        runs.refuse_symlinks(run.root)
        lock = runs.RunLock(run.root)
        lock.acquire()
    except OSError as err:
        raise ConfigError(f"output directory {shown} is not writable: {err.strerror or err}") from None
    try:
        config = _settle_config(config, run, resume, force)
    except BaseException:
        lock.release()
        raise
    return config, run


def _settle_config(config: Config | None, run: runs.RunDir, resume: bool, force: bool) -> Config:
    """With the lock held: check the directory again (another process may have raced us), then the config."""
    runs.refuse_symlinks(run.root)
    if not resume:
        runconfig.check_fresh(run.root)
        runconfig.save_config(run.root, config.to_dict())
        return config
    runs.sweep_temp(run.root)  # leftovers of a writer killed mid-write; we hold the lock
    old = runconfig.load_saved_config(run.root)
    if config is None:
        return config_from_dict(old)
    changes = runconfig.config_diff(old, config.to_dict())
    if not changes:
        return config
    if not force:
        raise ConfigError(f"config differs from the saved run ({'; '.join(changes)}); pass --force to use it")
    runconfig.check_forced_changes(run.root, old, config.to_dict())
    runconfig.save_config(run.root, config.to_dict())
    return config


def release_run_dir(run: runs.RunDir) -> None:
    runs.RunLock(run.root).release()


def run_star(
    config: Config | None = None,
    out_dir: str | Path = "runs/default",
    resume: bool = False,
    reporter: Reporter = SILENT,
    force: bool = False,
) -> dict:
    """Run (or resume) STaR and return ``summary.json``'s content.

    A new run uses ``config`` (default: `Config()`); a resumed run uses the saved config, or ``config``
    if it equals the saved one (or ``force``, for keys that cannot invalidate finished work).
    """
    data = None
    if not resume:  # bad task settings or data fail here, before the run directory exists
        config = config or Config()
        runconfig.check_fresh(out_dir)
        data = load_data(config)
    config, run = prepare_run_dir(config, out_dir, resume, force)
    try:
        return _run(config, run, reporter, data)
    finally:
        release_run_dir(run)


def _run(config: Config, run: runs.RunDir, reporter: Reporter, data: tuple | None) -> dict:
    start = time.perf_counter()
    tracker = Tracker(config.report_to, run.root, config.to_dict())  # a missing tracker fails before any work
    try:
        engine = Engine(config, run, reporter, data)
        extra = {
            "task": config.task.name,
            "mode": config.loop.mode,
            "base_model": absolute_model_path(engine.base_path),
        }
        extra["versions"] = library_versions()
        return _iterations(engine, extra, tracker, start)
    finally:
        tracker.close()


def _iterations(engine: Engine, extra: dict, tracker: Tracker, start: float) -> dict:
    config, run, reporter = engine.config, engine.run, engine.reporter
    extra["base"] = _evaluate_base(engine)
    tracker.log_iteration(extra["base"])
    for n in range(1, config.loop.iterations + 1):
        tracker.log_iteration(_iteration(engine, n))
        summary = run.write_summary(extra)
        reporter.log(f"iteration {n}: accuracy {summary['iterations'][-1]['accuracy']:.1%}")
        if saturated([extra["base"], *summary["iterations"]], config.loop.patience, config.loop.min_improvement):
            reporter.log(f"accuracy saturated (patience {config.loop.patience}); stopping after iteration {n}")
            extra["stopped_early"] = n
            break
    extra["seconds_this_session"] = round(time.perf_counter() - start, 1)
    return run.write_summary(extra)
