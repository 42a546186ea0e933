"""Scoring a model on a task's test split: greedy accuracy, maj@k (self-consistency) and pass@k.

With these and the run modes, every row of the paper's tables can be rebuilt with one model:
few-shot direct (``task.data.few_shot_style=direct``), few-shot chain of thought (the default prompt),
direct fine-tuning (``loop.mode=direct``), STaR with and without rationalization (run checkpoints).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from selftaught import star
from selftaught.config import Config, ConfigError
from selftaught.rundir import RunDir, damaged, is_run_dir
from selftaught.tasks import Example, Task
from selftaught.tasks.stops import NO_STOP


def majority(answers: list[str | None]) -> str | None:
    """Most common non-empty answer; ties go to the one seen first.

    >>> majority(["3", None, "4", "4", "3"])
    '3'
    >>> majority([None, None]) is None
    True
    """
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return None
    best = max(counts.values())
    return next(a for a in answers if a is not None and counts[a] == best)


def score_samples(task: Task, examples: list[Example], samples: list[list[str]]) -> dict:
    """maj@k and pass@k over k sampled completions per example (k = len of each list), and checked_maj@k:
    the vote of the samples whose reasoning steps check (`Task.verify_rationale`, which never reads the
    gold answer), of all when none does; equal to maj@k for tasks without a step check."""
    maj_hits = pass_hits = checked_hits = 0
    for example, texts in zip(examples, samples):
        answers = [star.extract(task, example, t) for t in texts]  # a `Completion` the budget cut: see extract
        maj_hits += task.check(majority(answers), example)
        pass_hits += any(task.check(a, example) for a in answers)
        voters = [a for a, ok in zip(answers, star.steps_checked(task, example, texts)) if ok] or answers
        checked_hits += task.check(majority(voters), example)
    n = max(len(examples), 1)
    k = len(samples[0]) if samples else 0
    return {f"maj@{k}": maj_hits / n, f"pass@{k}": pass_hits / n, f"checked_maj@{k}": checked_hits / n}


def eval_config(target: str, recipe: str | Path | None, overrides: list[str]) -> Config:
    """The config to score ``target`` with: a recipe if given; else, for a run directory, the run's own
    saved config (its task, data and model settings); else the defaults. ``overrides`` apply on top."""
    from selftaught.config import apply_override, config_from_dict, load_config
    from selftaught.rundir import is_run_dir, load_saved_config

    if recipe is not None or not is_run_dir(target):
        return load_config(recipe, overrides)
    data = load_saved_config(target)
    for assignment in overrides:
        apply_override(data, assignment)
    return config_from_dict(data)


def resolve_model(target: str, config: Config, iteration: int | None = None) -> str:
    """A model path from what the user named: a run directory (its last or given checkpoint),
    ``embedded`` (the cached M0), a GGUF file (its converted folder), or a model folder / hub id as is."""
    from selftaught.models.gguf import ensure_converted, is_gguf

    if is_gguf(target):
        return str(ensure_converted(target, "", config.model.base.cache_dir))
    path = Path(target)
    if is_run_dir(path) and RunDir(path).base.exists():
        return _run_model(RunDir(path), iteration)
    return target


def _run_model(run: RunDir, iteration: int | None) -> str:
    """The run's checkpoint of ``iteration`` (default: the last finished), or M0 for iteration 0."""
    done = run.finished_iterations()
    if iteration == 0 or (iteration is None and not done):
        if not run.summary.is_file():
            raise ConfigError(f"{run.root} has no finished iteration and no {run.summary.name}")
        base = run.read_summary().base_model
        if not isinstance(base, str) or not base:
            raise damaged(run.summary, "has no base_model", "resume the run to rewrite it")
        return base
    n = iteration if iteration is not None else done[-1]
    if n not in done:
        raise ConfigError(f"{run.root} has no finished iteration {n} (finished: {done})")
    return str(run.iteration(n).checkpoint)


def evaluate_model(
    config: Config,
    model_path: str,
    num_samples: int = 1,
    temperature: float = 0.0,
    split: str = "test",
    few_shot: bool = True,
) -> dict:
    """Greedy accuracy per bucket, plus maj@k / pass@k when ``num_samples`` > 1; ``few_shot`` false
    drops the task's few-shot prefix from the prompts."""
    from selftaught.generation import make_generator
    from selftaught.generation.sampling import Sampling
    from selftaught.tasks import make_task

    task = make_task(config)
    examples = task.load(split)
    generator = make_generator(model_path, config)
    prompts = [task.prompt(ex, few_shot=few_shot) for ex in examples]
    budgets = [task.max_new_tokens(ex) for ex in examples]
    stop = task.stop() if config.generation.stop_at_answer else NO_STOP
    greedy = generator.complete(
        prompts, budgets, Sampling.from_config(config.generation, config.seed, stop, greedy=True)
    )
    rows = [star.grade(task, ex, texts[0], False) for ex, texts in zip(examples, greedy)]
    accuracy, by_bucket = star.accuracy_by_bucket(task, examples, rows)
    result = {
        "model": model_path,
        "task": task.name,
        "split": split,
        "num_examples": len(examples),
        "few_shot": few_shot,
    }
    result |= {"accuracy": accuracy, "accuracy_by_bucket": by_bucket}
    if num_samples > 1:
        sampling = Sampling.from_config(
            config.generation, config.seed, stop, num_samples=num_samples, temperature=temperature
        )
        sampled = generator.complete(prompts, budgets, sampling)
        result |= score_samples(task, examples, sampled)
    return result
