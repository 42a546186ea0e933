"""Training the V-STaR verifier with TRL's `DPOTrainer` on a run's own (right, wrong) pairs.

The verifier folder (``RUN/verifier`` by default) is resumable like an iteration's::

    settings.json     the verifier section, the iterations whose samples it uses, the model it starts from
    pairs.jsonl       the pairs (`samples.Pair`): question id, right solution, wrong solution, iteration
    phases.json       phases finished so far (pairs, train), with their seconds
    .trainer/         the DPO Trainer's checkpoints while training (a resumed phase continues from the last)
    checkpoint/       the verifier (HF format) with verifier.json (its reference model, beta) and README.md
    train_log.jsonl   the Trainer's loss log; metrics.json: counts, seconds, the last logged DPO statistics

The loss is TRL's (``loss_type=["sigmoid"]``; ``verifier.loss=rpo`` adds the NLL of the right solution,
``["sigmoid", "sft"]``). selftaught tokenizes the pairs itself (`training.preference`), so the tokens
trained on are the tokens scored, and adds position ids for digit-position models.
"""

from __future__ import annotations

from pathlib import Path

from selftaught import rundir
from selftaught.common import atomic
from selftaught.common.ui import SILENT, Reporter
from selftaught.config import Config
from selftaught.models import absolute_model_path, free_memory, load_model
from selftaught.rundir import StepDir
from selftaught.samples import read_samples
from selftaught.tasks import Example, Task, make_task
from selftaught.training.finite import check_loss, check_weights
from selftaught.training.preference import DpoJob, dpo_config, tokenized_rows, train_preference
from selftaught.training.sft import add_lora
from selftaught.verifier.pairs import Pair, build_pairs, pair_counts, read_pairs, write_pairs
from selftaught.verifier.score import VerifierError, VerifierInfo


def pairs_from_run(root: Path, iterations: list[int]) -> list[Pair]:
    """Pairs of the given iterations' samples, accumulated over them as V-STaR does."""
    return build_pairs({n: read_samples(rundir.RunDir(root).iteration(n).generated) for n in iterations})


def iterations_to_use(root: Path, wanted: int) -> list[int]:
    """Finished iterations 1..``wanted`` (0 = all); a missing one is a `VerifierError` naming the setting."""
    done = rundir.RunDir(root).finished_iterations()
    if not done:
        raise VerifierError(f"{root} has no finished iteration: nothing to train a verifier on")
    if wanted and wanted not in done:
        raise VerifierError(f"verifier.iterations={wanted}, but {root} has finished iterations {done} only")
    return [n for n in done if not wanted or n <= wanted]


def init_model(root: Path, config: Config, iterations: list[int]) -> str:
    """Where the verifier starts: the last used iteration's model (paper: the SFT generator) or M0."""
    from selftaught.evaluate import resolve_model

    which = 0 if config.verifier.init == "base" else iterations[-1]
    return absolute_model_path(resolve_model(str(root), config, iteration=which))


def preference_rows(lm, task: Task, examples: dict[str, Example], pairs: list[Pair], config: Config) -> list[dict]:
    """Pairs as TRL's tokenized preference rows (prompt_ids, chosen_ids, rejected_ids)."""
    few_shot = config.loop.few_shot_in_training
    triples = [(task.prompt(examples[p.id], hint=False, few_shot=few_shot), p.chosen, p.rejected) for p in pairs]
    return tokenized_rows(lm, triples, config.verifier.max_length)


def dpo_job(config: Config, scratch: Path) -> DpoJob:
    """The DPO run the verifier section asks for (bf16 as ``train.precision`` says, never TRL's bf16 default)."""
    v = config.verifier
    return DpoJob(
        out_dir=scratch, steps=v.steps, batch_size=v.batch_size, learning_rate=v.learning_rate,
        warmup_steps=max(1, v.steps // 20), beta=v.beta, max_length=v.max_length,
        save_every_steps=v.save_every_steps, seed=config.seed, precision=config.train.precision,
        nll_weight=1.0 if v.loss == "rpo" else 0.0,
    )  # fmt: skip


def dpo_args(config: Config, scratch: Path, cuda: bool):
    """TRL's `DPOConfig` for the verifier section."""
    return dpo_config(dpo_job(config, scratch), cuda)


def run_dpo(config: Config, init_path: str, rows_of, scratch: Path, out_dir: Path, on_step) -> list[dict]:
    """Train a verifier from ``init_path`` on ``rows_of(lm)``; save it (weights or adapter) to ``out_dir``."""
    v, lora = config.verifier, config.model.lora
    lm = load_model(init_path, config.model)
    model = add_lora(lm.model, lora.r, lora.alpha, lora.dropout, lora.target_modules) if v.lora else lm.model
    # LoRA: the reference is the same weights with the adapters off (TRL does that); full: a second copy
    ref_model = None if v.lora else load_model(init_path, config.model).model
    log = train_preference(model, ref_model, lm, rows_of(lm), dpo_job(config, scratch), on_step)
    check_weights(model, "verifier: train")
    _save(model.merge_and_unload() if v.lora else model, lm, out_dir)
    del model, ref_model, lm
    free_memory()
    return log


def _save(model, lm, out_dir: Path) -> None:
    """Full weights: the verifier is loaded beside its reference, and a merged adapter loads anywhere."""
    from selftaught.models import save_model, scheme_name

    save_model(model, lm.tokenizer, scheme_name(lm.scheme), out_dir)


def with_verifier_overrides(config: Config, overrides: list[str]) -> Config:
    """The run's config with ``verifier.*`` overrides applied; any other key is refused (it would describe
    another run than the one whose samples train the verifier)."""
    from selftaught.config import ConfigError, apply_override, config_from_dict

    data = config.to_dict()
    for assignment in overrides:
        key = assignment.partition("=")[0].strip()
        if not key.startswith("verifier."):
            raise ConfigError(f"--set {key}: `verifier train` takes verifier.* settings only (the run's are fixed)")
        apply_override(data, assignment)
    return config_from_dict(data)


def _settings(config: Config, iterations: list[int], init_path: str) -> dict:
    return {"verifier": config.to_dict()["verifier"], "iterations": iterations, "init": init_path}


def _settle(folder: StepDir, settings: dict, reporter: Reporter) -> None:
    """Record the settings; a folder holding work made with other settings is finished (refused) or cleared."""
    path = folder.settings
    if path.is_file() and rundir.read_json(path, dict) != settings:
        if rundir.RunDir(folder).is_done(folder, "train"):
            raise VerifierError(
                f"{path}: {folder} already holds a verifier trained with other settings; "
                "choose another folder (--out) or delete it"
            )
        reporter.log(f"{folder}: unfinished verifier work made with other settings; starting over")
        for stale in (folder.pairs, folder.phases_file):
            stale.unlink(missing_ok=True)
        rundir.remove_scratch(folder, rundir.RunDir(folder).scratch(folder, "train"))
    atomic.atomic_write_json(path, settings)


def train_verifier(
    config: Config,
    root: str | Path,
    folder: str | Path | None = None,
    reporter: Reporter = SILENT,
    examples: list[Example] | None = None,
) -> dict:
    """Train (or finish training) the verifier of the run in ``root`` into ``folder`` (``root/verifier``);
    returns its metrics. The caller holds the run's lock."""
    root = Path(root)
    folder = StepDir(folder) if folder is not None else rundir.RunDir(root).verifier
    used = iterations_to_use(root, config.verifier.iterations)
    init_path = init_model(root, config, used)
    _settle(folder, _settings(config, used, init_path), reporter)
    work = rundir.RunDir(folder)
    work.phase(folder, "pairs", lambda: write_pairs(folder.pairs, pairs_from_run(root, used)))
    pairs = read_pairs(folder.pairs)
    if not pairs:
        raise VerifierError(
            f"{folder.pairs}: no (right, wrong) pair in iterations {used}: no question had both a right "
            "and a wrong sample; sample more per question (generation.num_samples) or at a higher temperature"
        )
    task = make_task(config)
    by_id = {ex.id: ex for ex in (examples if examples is not None else task.load("train"))}
    work.phase(folder, "train", lambda: _train_phase(config, task, by_id, pairs, folder, init_path, reporter))
    metrics = {**pair_counts(pairs), "iterations": used, "init": init_path, "seconds": work.phases(folder)}
    metrics["last_log"] = (rundir.read_jsonl(folder.train_log) or [{}])[-1]
    atomic.atomic_write_json(folder.metrics_file, metrics)  # the verifier's own metrics, not an evaluation
    return metrics


def _train_phase(config: Config, task: Task, by_id: dict, pairs: list[Pair], folder: StepDir, init_path: str, reporter):
    from selftaught.verifier.card import write_verifier_card

    missing = sorted({p.id for p in pairs} - set(by_id))
    if missing:
        raise VerifierError(f"{folder.pairs}: question {missing[0]} is not in the task's training split")
    label, steps = "verifier: train", config.verifier.steps
    with reporter.phase(label, total=steps) as advance:

        def on_step(step: int, loss: float | None) -> None:
            check_loss(loss, step, label)
            advance(1)

        def write(tmp: Path) -> None:
            rows_of = lambda lm: preference_rows(lm, task, by_id, pairs, config)  # noqa: E731
            log = run_dpo(config, init_path, rows_of, rundir.RunDir(folder).scratch(folder, "train"), tmp, on_step)
            atomic.atomic_write_jsonl(folder.train_log, log)
            info = VerifierInfo(init_path, config.verifier.beta, config.loop.few_shot_in_training, config.task.name)
            info.save(tmp)
            write_verifier_card(tmp, config, info, pair_counts(pairs), log)

        atomic.atomic_save_dir(folder.checkpoint, write)
