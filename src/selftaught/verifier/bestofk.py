"""Best-of-k with a verifier: n samples per test question, each scored, and pass@1, maj@k, pass@k and
Verifier@k for k = 1, 2, 4, ..., n from the same samples (`estimate`), with the seconds each part took."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from selftaught import star
from selftaught.config import Config
from selftaught.rundir import RunDir, StepDir
from selftaught.samples import Sample
from selftaught.tasks import Example, make_task
from selftaught.tasks.stops import NO_STOP
from selftaught.verifier.estimate import majority_at_k, pass_at_k, verifier_at_k
from selftaught.verifier.score import INFO_FILE, Scorer, VerifierError


@dataclass(frozen=True)
class ScoredQuestion:
    """One test question's n samples, graded and scored."""

    example: Example
    rows: list[Sample]
    scores: list[float]
    checked: list[bool] | None = None  # per sample: do its reasoning steps check (`star.steps_checked`)


def k_values(n: int) -> list[int]:
    """1, 2, 4, ... up to n, and n itself.

    >>> k_values(16), k_values(6)
    ([1, 2, 4, 8, 16], [1, 2, 4, 6])
    """
    ks, k = [], 1
    while k < n:
        ks.append(k)
        k *= 2
    return [*ks, n]


def best_of_k_metrics(questions: list[ScoredQuestion], ks: list[int]) -> dict:
    """pass@1 (mean correctness of a sample) and, per k, maj@k, pass@k and Verifier@k, averaged over
    questions; with every question's ``checked``, also checked_maj@k (only samples whose steps check vote)."""
    total = max(len(questions), 1)
    with_check = bool(questions) and all(q.checked is not None for q in questions)
    out = {"pass@1": sum(sum(r.correct for r in q.rows) / len(q.rows) for q in questions) / total}
    for k in ks:
        maj = pas = ver = checked_maj = 0.0
        for q in questions:
            correct = [bool(r.correct) for r in q.rows]
            answers = [r.answer for r in q.rows]
            right = {r.answer for r in q.rows if r.correct and r.answer is not None}
            maj += majority_at_k(answers, right, k)
            pas += pass_at_k(len(correct), sum(correct), k)
            ver += verifier_at_k(q.scores, correct, k)
            if with_check:
                checked_maj += majority_at_k(answers, right, k, checked=q.checked)
        out |= {f"maj@{k}": maj / total, f"pass@{k}": pas / total, f"verifier@{k}": ver / total}
        if with_check:
            out[f"checked_maj@{k}"] = checked_maj / total
    return out


def sample_and_grade(config: Config, model_path: str, examples: list[Example], n: int, temperature: float, few_shot):
    """n graded samples per example from the generator (then unloaded), and the seconds sampling took."""
    from selftaught.generation import make_generator
    from selftaught.generation.sampling import Sampling
    from selftaught.models import free_memory

    task = make_task(config)
    generator = make_generator(model_path, config)
    prompts = [task.prompt(ex, few_shot=few_shot) for ex in examples]
    budgets = [task.max_new_tokens(ex) for ex in examples]
    stop = task.stop() if config.generation.stop_at_answer else NO_STOP
    sampling = Sampling.from_config(config.generation, config.seed, stop, num_samples=n, temperature=temperature)
    start = time.perf_counter()
    texts = generator.complete(prompts, budgets, sampling)
    seconds = time.perf_counter() - start
    del generator
    free_memory()
    rows = [
        [star.grade(task, ex, text, False, j) for j, text in enumerate(group)] for ex, group in zip(examples, texts)
    ]
    return rows, seconds


def evaluate_best_of_k(
    config: Config,
    model_path: str,
    verifier_path: str | Path,
    num_samples: int,
    temperature: float,
    split: str = "test",
    few_shot: bool = True,
) -> dict:
    """Sample ``num_samples`` solutions per question with the generator, score each with the verifier,
    and report pass@1, maj@k, pass@k and Verifier@k with the seconds for sampling and for scoring."""
    if num_samples < 2:
        raise VerifierError(f"--samples must be >= 2 to pick the best of k with a verifier, got {num_samples}")
    verifier_path = resolve_verifier(verifier_path)
    task = make_task(config)
    examples = task.load(split)
    rows, sample_seconds = sample_and_grade(config, model_path, examples, num_samples, temperature, few_shot)
    questions, score_seconds = score_rows(config, task, verifier_path, examples, rows)
    result = {
        "model": model_path,
        "verifier": str(verifier_path),
        "task": task.name,
        "split": split,
        "num_examples": len(examples),
        "num_samples": num_samples,
        "temperature": temperature,
        "few_shot": few_shot,
    }
    result |= best_of_k_metrics(questions, k_values(num_samples))
    result |= {"seconds_sampling": round(sample_seconds, 2), "seconds_scoring": round(score_seconds, 2)}
    return result


def score_rows(config: Config, task, verifier_path: Path, examples: list[Example], rows: list[list[Sample]]):
    """Every sample scored by the verifier (prompted as it was trained); (questions, seconds)."""
    scorer = Scorer(verifier_path, config.model, config.verifier.max_length)
    prompts = [
        task.prompt(ex, hint=False, few_shot=scorer.info.few_shot) for ex, group in zip(examples, rows) for _ in group
    ]
    start = time.perf_counter()
    flat = scorer.score(prompts, [row.text for group in rows for row in group])
    seconds = time.perf_counter() - start
    scorer.release()
    questions, at = [], 0
    for ex, group in zip(examples, rows):
        checked = star.steps_checked(task, ex, [row.text for row in group])
        questions.append(ScoredQuestion(ex, group, flat[at : at + len(group)], checked))
        at += len(group)
    return questions, seconds


def resolve_verifier(path: str | Path) -> Path:
    """A verifier checkpoint from what the user named: the folder itself, or a run directory (its
    ``verifier/checkpoint``); anything else is a `VerifierError` naming the path."""
    path = Path(path)
    for candidate in (path, RunDir(path).verifier.checkpoint, StepDir(path).checkpoint):
        if (candidate / INFO_FILE).is_file():
            return candidate
    if not path.exists():
        raise VerifierError(f"--verifier {path} does not exist")
    raise VerifierError(
        f"--verifier {path}: no {INFO_FILE} there (nor in {RunDir(path).verifier.checkpoint}); "
        "train one with `selftaught verifier train RUN`"
    )
