"""Preference training with TRL's `DPOTrainer` on rows selftaught tokenized: the V-STaR verifier's DPO
(`selftaught.verifier.train`) and the generator's ``train.objective=rpo`` (`training.rpo`) share it.

A pair is tokenized as scoring tokenizes it (`encode_response`): the rendered prompt and the response
apart, joined, with the tokenizer's EOS after the response, which is also how SFT tokenizes a training
record (`sft.encode_pairs`). A digit-position model gets its position ids in the collator (`PositionCollator`).
TRL's own tokenization is skipped, nothing else. Heavy imports (TRL, datasets) happen inside the functions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from selftaught.common.versions import quiet_checkpointing_deprecation
from selftaught.models import LoadedModel
from selftaught.training.sft import checkpointing_kwargs, last_complete_checkpoint, use_bf16


def encode_response(lm: LoadedModel, prompt: str, response: str, max_length: int) -> tuple[list[int], list[int]]:
    """(prompt ids, response ids + EOS) for a task prompt and a completion, cut to ``max_length`` in all
    (the end of the response goes first, as the DPO collator's ``keep_start`` truncation does)."""
    tokenizer = lm.tokenizer
    prompt_ids = tokenizer(lm.render(prompt), add_special_tokens=lm.add_special_tokens)["input_ids"]
    response_ids = tokenizer(response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    prompt_ids = prompt_ids[:max_length]
    return prompt_ids, response_ids[: max(max_length - len(prompt_ids), 0)]


def padded_batch(rows: list[list[int]], pad_id: int, scheme) -> dict:
    """Right-padded ids and mask, plus the position ids a digit-position model needs (others count 0, 1, ...)."""
    width = max(len(row) for row in rows)
    ids = torch.tensor([row + [pad_id] * (width - len(row)) for row in rows])
    mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in rows])
    batch = {"input_ids": ids, "attention_mask": mask}
    if not scheme.ordinary:
        batch["position_ids"] = scheme.full(ids)[0]  # padding is special: it leaves the scheme's state alone
    return batch


def tokenized_rows(lm: LoadedModel, triples: list[tuple[str, str, str]], max_length: int) -> list[dict]:
    """(prompt, chosen, rejected) texts as TRL's tokenized preference rows (prompt_ids, chosen_ids, rejected_ids)."""
    rows = []
    for prompt, chosen, rejected in triples:
        prompt_ids, chosen_ids = encode_response(lm, prompt, chosen, max_length)
        rows.append(
            {
                "prompt_ids": prompt_ids,
                "chosen_ids": chosen_ids,
                "rejected_ids": encode_response(lm, prompt, rejected, max_length)[1],
            }
        )
    return rows


class PositionCollator:
    """TRL's preference collator, plus the position ids of a digit-position model (computed on the
    right-padded rows exactly as for scoring)."""

    def __init__(self, base, pad_id: int, scheme):
        self.base, self.pad_id, self.scheme = base, pad_id, scheme

    def __call__(self, examples: list[dict]) -> dict:
        batch = self.base(examples)
        if not self.scheme.ordinary:
            batch["position_ids"] = padded_batch(batch["input_ids"].tolist(), self.pad_id, self.scheme)["position_ids"]
        return batch


@dataclass(frozen=True)
class DpoJob:
    """What one `train_preference` call trains for, with which settings, and where its checkpoints go."""

    out_dir: str | Path  # the Trainer's checkpoints; a later job with the same folder resumes from them
    steps: int  # optimizer steps
    batch_size: int  # pairs per device and micro-batch (each pair is two sequences)
    learning_rate: float
    warmup_steps: int
    beta: float  # DPO's KL strength against the reference
    max_length: int  # tokens of prompt + response (longer ones are cut)
    save_every_steps: int  # 0: no Trainer checkpoints (and no resume)
    seed: int
    precision: str  # train.precision: auto | bf16 | fp32
    nll_weight: float = 0.0  # > 0: RPO, the chosen response's NLL (TRL's "sft" loss) added with this weight
    weight_decay: float = 0.0
    gradient_accumulation_steps: int = 1
    gradient_checkpointing: bool = False  # used on a GPU only


def dpo_config(job: DpoJob, cuda: bool):
    """TRL's `DPOConfig` for ``job``: cosine schedule, quiet, bf16 only as ``job.precision`` says."""
    from trl import DPOConfig

    rpo = job.nll_weight > 0
    return DPOConfig(
        output_dir=str(job.out_dir),
        max_steps=job.steps,
        per_device_train_batch_size=job.batch_size,
        gradient_accumulation_steps=job.gradient_accumulation_steps,
        learning_rate=job.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=job.warmup_steps,
        weight_decay=job.weight_decay,
        beta=job.beta,
        loss_type=["sigmoid", "sft"] if rpo else ["sigmoid"],
        loss_weights=[1.0, job.nll_weight] if rpo else None,
        max_length=job.max_length,
        logging_steps=max(1, job.steps // 20),
        logging_nan_inf_filter=False,  # a NaN loss must reach on_step, which stops the phase
        save_strategy="steps" if job.save_every_steps else "no",
        save_steps=job.save_every_steps or 500,
        save_total_limit=2,  # the previous checkpoint survives a kill during the next save
        seed=job.seed,
        data_seed=job.seed,
        use_cpu=not cuda,
        bf16=use_bf16(job.precision, cuda),
        **checkpointing_kwargs(job.gradient_checkpointing and cuda, DPOConfig),  # TRL's default: on
        report_to=[],
        disable_tqdm=True,
        remove_unused_columns=False,
        dataloader_num_workers=0,
    )


def _trainer(model, ref_model, lm: LoadedModel, rows: list[dict], args):
    """TRL's DPOTrainer on rows selftaught tokenized (its own tokenization is skipped, nothing else)."""
    from datasets import Dataset
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    from trl import DPOTrainer
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    class PretokenizedDPOTrainer(DPOTrainer):
        def _prepare_dataset(self, dataset, *args, **kwargs):
            return dataset

    pad_id = lm.tokenizer.pad_token_id
    collator = PositionCollator(
        DataCollatorForPreference(pad_token_id=pad_id, max_length=args.max_length), pad_id, lm.scheme
    )
    trainer = PretokenizedDPOTrainer(
        model=model, ref_model=ref_model, args=args, data_collator=collator,
        train_dataset=Dataset.from_list(rows), processing_class=lm.tokenizer,
    )  # fmt: skip
    for noisy in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(noisy)
    return trainer


def _progress(on_step: Callable[[int, float | None], None]):
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        last_loss = None

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                self.last_loss = logs["loss"]

        def on_step_end(self, args, state, control, **kwargs):
            on_step(state.global_step, self.last_loss)

    return Progress()


def train_preference(model, ref_model, lm: LoadedModel, rows: list[dict], job: DpoJob, on_step) -> list[dict]:
    """Train ``model`` in place on the tokenized preference ``rows``; returns the loss log.

    ``ref_model`` None: the reference is ``model`` with its LoRA adapters off (``model`` must be a fresh
    PEFT model); otherwise a frozen model of its own. With ``job.save_every_steps`` a later call with the
    same ``job.out_dir`` resumes from the last complete Trainer checkpoint. The reference adapter TRL adds
    beside a PEFT model's own is removed again, so only the trained adapter is saved.
    """
    cuda = next(model.parameters()).is_cuda
    with quiet_checkpointing_deprecation():
        trainer = _trainer(model, ref_model, lm, rows, dpo_config(job, cuda))
        trainer.add_callback(_progress(on_step))
        trainer.train(resume_from_checkpoint=last_complete_checkpoint(job.out_dir) if job.save_every_steps else None)
    model.eval()
    if "ref" in getattr(model, "peft_config", {}):
        model.delete_adapter("ref")
    log = [entry for entry in trainer.state.log_history if "loss" in entry]
    del trainer
    return log
