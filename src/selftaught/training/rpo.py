"""The generator's training step under ``train.objective=rpo``: iterative reasoning preference optimisation
(Pang et al. 2024) with TRL's `DPOTrainer` (`training.preference`, shared with the V-STaR verifier).

Each batch's loss is DPO's (sigmoid, beta ``train.rpo_beta``) on (chosen, rejected) rationales of the same
question, plus ``train.rpo_alpha`` x the NLL of the chosen tokens: TRL's ``loss_type=["sigmoid", "sft"]``.
Chosen: the iteration's training records (``train.jsonl``: kept samples, rationalizations stored unhinted);
rejected: the wrong plain samples of their question (``pairs.jsonl``, `verifier.pairs.rpo_pairs`). A record
whose question had no wrong sample becomes a (chosen, chosen) row: its DPO term is the constant log 2, with
zero gradient, so it is trained on by the NLL alone, as SFT would train on it. TRL's logged DPO statistics
(rewards, accuracies) count those rows too.

The reference model is M0 (``job.reference_path``): under LoRA starting from M0 it is the same weights with
the adapters off (no second copy); otherwise (full fine-tuning, or LoRA on M_{n-1}) a frozen copy of M0.
One process only (the config refuses more). The Trainer checkpoints into the job's scratch folder every
``train.save_every_steps`` and a rerun of the same job resumes from the last complete checkpoint, as SFT does.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from selftaught.config import Config, config_from_dict
from selftaught.models import free_memory, load_model
from selftaught.samples import Pair, Record, read_pairs, read_records
from selftaught.training.finite import check_weights
from selftaught.training.phase import TrainJob, save_trained
from selftaught.training.preference import DpoJob, tokenized_rows, train_preference
from selftaught.training.sft import add_lora


def nll_only(records: list[Record], pairs: list[Pair]) -> list[Record]:
    """The records whose question has no pair: trained on by the NLL alone.

    >>> nll_only([Record("q", "Q", "a", "generated"), Record("r", "R", "b", "generated")], [Pair("q", "a", "x", 1)])
    [Record(id='r', prompt='R', completion='b', source='generated')]
    """
    paired = {pair.id for pair in pairs}
    return [record for record in records if record.id not in paired]


def rpo_triples(records: list[Record], pairs: list[Pair]) -> list[tuple[str, str, str]]:
    """(prompt, chosen, rejected) texts: every pair, then each unpaired record against itself."""
    prompts = {record.id: record.prompt for record in records}
    paired = [(prompts[pair.id], pair.chosen, pair.rejected) for pair in pairs]
    return paired + [(r.prompt, r.completion, r.completion) for r in nll_only(records, pairs)]


def rpo_dpo_job(config: Config, job: TrainJob) -> DpoJob:
    """The train section's settings as a DPO run: batch = pairs per step, warmup and decay as for SFT."""
    t = config.train
    return DpoJob(
        out_dir=job.scratch, steps=job.steps, batch_size=t.batch_size, learning_rate=t.learning_rate,
        warmup_steps=max(1, int(t.warmup_ratio * job.steps)), beta=t.rpo_beta, max_length=t.max_length,
        save_every_steps=t.save_every_steps, seed=config.seed, precision=t.precision, nll_weight=t.rpo_alpha,
        weight_decay=t.weight_decay, gradient_accumulation_steps=t.gradient_accumulation_steps,
        gradient_checkpointing=t.gradient_checkpointing,
    )  # fmt: skip


def run_rpo_job(
    job: TrainJob, out_dir: Path | None, on_step: Callable[[int, float | None], None] | None = None
) -> list[dict]:
    """Train from ``job.init_path`` against the reference ``job.reference_path`` on the job's records and
    pairs; save the model to ``out_dir`` as SFT saves it (`phase.save_trained`). Returns the loss log."""
    config = config_from_dict(job.config)
    lora = config.model.lora
    lm = load_model(job.init_path, config.model)
    model = add_lora(lm.model, lora.r, lora.alpha, lora.dropout, lora.target_modules) if lora.enabled else lm.model
    adapters_off_is_reference = lora.enabled and Path(job.init_path) == Path(job.reference_path)
    ref_model = None if adapters_off_is_reference else load_model(job.reference_path, config.model).model
    triples = rpo_triples(read_records(job.records_path), read_pairs(job.pairs_path))
    rows = tokenized_rows(lm, triples, config.train.max_length)
    log = train_preference(model, ref_model, lm, rows, rpo_dpo_job(config, job), on_step or (lambda step, loss: None))
    if out_dir is not None:
        check_weights(model, job.label)
        save_trained(model, lm, config, job.init_path, out_dir)
    del model, ref_model, lm
    free_memory()
    return log
