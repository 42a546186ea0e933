"""Supervised fine-tuning on (prompt, completion) pairs with `transformers.Trainer`.

Loss is on completion tokens (rationale + answer + EOS) only: prompt tokens get label -100. Position
ids come from the model's position scheme, computed once per example, so a digit-position model
trains on exactly the ids it will see while generating.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from selftaught.common.versions import quiet_checkpointing_deprecation
from selftaught.config import TrainConfig
from selftaught.models import native_cpu_bf16
from selftaught.models.positions import PERIOD, PositionScheme
from selftaught.training.packing import IGNORE, VARLEN_KERNELS, PackCollator


def encode_pairs(
    tokenizer,
    scheme: PositionScheme,
    pairs: list[tuple[str, str]],
    max_length: int = 2048,
    max_period: int = 0,
    seed: int = 0,
    add_special_tokens: bool = True,
) -> list[dict]:
    """Token ids, masked labels and position ids for each (prompt, completion).

    Prompt and completion are tokenized apart and joined, so the prompt/completion boundary is a
    token boundary whatever the tokenizer merges. With a digit scheme and ``max_period`` > 8, each
    example's columns are spaced by a random period in [8, max_period] (seeded), so training covers
    long distances between columns.
    """
    prompt_ids = tokenizer([p for p, _ in pairs], add_special_tokens=add_special_tokens)["input_ids"]
    completion_ids = tokenizer([c for _, c in pairs], add_special_tokens=False)["input_ids"]
    features = []
    for prompt, completion in zip(prompt_ids, completion_ids):
        ids = (prompt + completion + [tokenizer.eos_token_id])[:max_length]
        labels = ([IGNORE] * len(prompt) + ids[len(prompt) :])[: len(ids)]
        features.append({"input_ids": ids, "labels": labels})
    if not scheme.ordinary:  # ordinary ids are the model's own default: none stored
        # one vectorised pass over the right-padded block (padding is special: state untouched)
        width = max(len(f["input_ids"]) for f in features)
        block = torch.tensor(
            [f["input_ids"] + [tokenizer.pad_token_id] * (width - len(f["input_ids"])) for f in features]
        )
        period = None
        if max_period > PERIOD:
            rng = torch.Generator().manual_seed(seed)
            period = torch.randint(PERIOD, max_period + 1, (len(features),), generator=rng)
        positions = scheme.full(block, period=period)[0].tolist()
        for feat, pos in zip(features, positions):
            feat["position_ids"] = pos[: len(feat["input_ids"])]
    return features


class PadCollator:
    """Right-pads a batch; padding gets label -100 and attention mask 0."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, features: list[dict]) -> dict:
        width = max(len(f["input_ids"]) for f in features)

        def pad(key: str, value: int) -> torch.Tensor:
            return torch.tensor([f[key] + [value] * (width - len(f[key])) for f in features])

        batch = {
            "input_ids": pad("input_ids", self.pad_id),
            "labels": pad("labels", IGNORE),
            "attention_mask": torch.tensor(
                [[1] * len(f["input_ids"]) + [0] * (width - len(f["input_ids"])) for f in features]
            ),
        }
        if "position_ids" in features[0]:
            batch["position_ids"] = pad("position_ids", 0)
        return batch


def collator_for(model, features: list[dict], pad_id: int, packing: bool = True):
    """The batch layout for this model: packed rows (SDPA, eager), one flattened row (varlen kernels), or padding.

    Flash attention skips cross-example blocks of a flattened row, so transformers' own
    `DataCollatorWithFlattening` is the better path there; it needs ordinary positions (it marks each
    example's start by a position-id reset). Other attention kernels take a 4D mask per packed row.
    """
    attention = getattr(model.config, "_attn_implementation", "eager")
    own_positions = bool(features) and "position_ids" in features[0]
    if not packing:
        return PadCollator(pad_id)
    if attention in VARLEN_KERNELS and not own_positions:
        from transformers import DataCollatorWithFlattening

        return DataCollatorWithFlattening(return_position_ids=True, separator_id=IGNORE)
    if attention in ("sdpa", "eager"):
        return PackCollator(pad_id, additive_mask=attention == "eager")
    return PadCollator(pad_id)  # kernels that take neither a varlen row nor a 4D mask


class _Progress(TrainerCallback):
    def __init__(self, on_step: Callable[[int, float | None], None]):
        self.on_step, self.last_loss = on_step, None

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.last_loss = logs["loss"]

    def on_step_end(self, args, state, control, **kwargs):
        self.on_step(state.global_step, self.last_loss)


def add_lora(model, r: int, alpha: int, dropout: float, target_modules: str):
    """Wrap ``model`` with fresh LoRA adapters (PEFT); only adapter weights will train."""
    from peft import LoraConfig, get_peft_model

    targets = target_modules if target_modules == "all-linear" else [m.strip() for m in target_modules.split(",")]
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, task_type="CAUSAL_LM")
    with quiet_checkpointing_deprecation():  # PEFT reads the attribute while wrapping
        return get_peft_model(model, config)


def last_complete_checkpoint(out_dir: str | Path) -> str | None:
    """Newest ``checkpoint-N`` whose trainer state (written last) parses; None if there is none."""
    import json

    found = []
    for folder in Path(out_dir).glob("checkpoint-*"):
        try:
            json.loads((folder / "trainer_state.json").read_text())
            found.append((int(folder.name.split("-")[1]), folder))
        except (OSError, ValueError):
            continue  # killed while saving: fall back to the previous one
    return str(max(found)[1]) if found else None


def checkpointing_kwargs(enabled: bool, args_class=TrainingArguments) -> dict:
    """Activation checkpointing on or off, by the field's current name.

    transformers v5 renamed gradient_checkpointing to activation_checkpointing and warns on the old
    name; TRL's configs default it to on, so the value is always passed.
    """
    import inspect

    name = "activation_checkpointing"
    if name not in inspect.signature(args_class).parameters:
        name = "gradient_checkpointing"
    return {name: enabled}


def _tensorboard_callback(logs_dir: str | Path):
    """transformers' TensorBoardCallback writing to ``logs_dir`` (its default lives in the scratch folder)."""
    from torch.utils.tensorboard import SummaryWriter
    from transformers.integrations import TensorBoardCallback

    return TensorBoardCallback(tb_writer=SummaryWriter(log_dir=str(logs_dir)))


def use_bf16(precision: str, cuda: bool) -> bool:
    """Whether to train under bf16 autocast; ``auto`` means where the hardware computes bf16 natively.

    >>> use_bf16("bf16", cuda=False), use_bf16("fp32", cuda=True)
    (True, False)
    """
    if precision == "auto":
        return torch.cuda.is_bf16_supported() if cuda else native_cpu_bf16()
    return precision == "bf16"


@dataclass(frozen=True)
class SftJob:
    """What one `train_sft` call trains for, with which settings, and where its files go."""

    out_dir: str | Path  # the Trainer's checkpoints; a later job with the same folder resumes from them
    max_steps: int  # optimizer steps
    train: TrainConfig
    seed: int
    report_to: tuple[str, ...] = ()  # tracker names (`parse_report_to`) that get the Trainer's logs
    logs_dir: str | Path | None = None  # TensorBoard's logs (default: ``out_dir/logs``); outlives ``out_dir``


def train_sft(
    model,
    features: list[dict],
    pad_id: int,
    job: SftJob,
    *,
    on_step: Callable[[int, float | None], None] | None = None,
    on_trained: Callable[[Trainer], None] | None = None,
) -> list[dict]:
    """Train in place for ``job.max_steps`` optimizer steps with ``job.train``'s settings; returns the loss log.

    ``train.precision`` picks bf16 autocast or fp32 (`use_bf16`); gradient checkpointing is used only on
    a GPU. With ``train.save_every_steps``, the Trainer checkpoints into ``job.out_dir`` (weights,
    optimizer, scheduler, RNG and data order) and a later call with the same ``out_dir`` resumes from the
    last complete one. ``job.report_to`` (tracker names) sends the Trainer's logs to those trackers;
    TensorBoard's go to ``job.logs_dir``, which outlives the scratch ``out_dir``. ``train.packing`` packs
    each batch's examples into rows instead of padding them (`collator_for`); the examples and the loss
    are the same. ``on_trained(trainer)`` runs on every process after training (FSDP/DeepSpeed gather
    weights there).
    """
    trainer = _make_trainer(model, features, pad_id, job, on_step)
    resume = last_complete_checkpoint(job.out_dir) if job.train.save_every_steps else None
    # no KV cache while training: it is never read, and with one transformers skips the packed-sequence
    # detection that keeps a flattened row's examples apart (tests/training/test_packing.py)
    use_cache, model.config.use_cache = model.config.use_cache, False
    try:
        trainer.train(resume_from_checkpoint=resume)
    finally:
        model.config.use_cache = use_cache
    if on_trained:
        on_trained(trainer)
    model.eval()
    return [entry for entry in trainer.state.log_history if "loss" in entry]


def _make_trainer(model, features: list[dict], pad_id: int, job: SftJob, on_step) -> Trainer:
    """A quiet Trainer for ``job`` (no printed logs or progress bars) reporting each step to ``on_step``."""
    cuda = torch.cuda.is_available() and next(model.parameters()).is_cuda
    args = _training_arguments(job, cuda)
    callbacks = [_Progress(on_step)] if on_step else []
    if "tensorboard" in job.report_to:
        callbacks.append(_tensorboard_callback(job.logs_dir or Path(job.out_dir) / "logs"))
    logging.getLogger("transformers.trainer").setLevel(logging.WARNING)
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=features,
        data_collator=collator_for(model, features, pad_id, job.train.packing),
        callbacks=callbacks,
    )
    for noisy in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(noisy)
    return trainer


def _training_arguments(job: SftJob, cuda: bool) -> TrainingArguments:
    """The Trainer's settings for ``job``: cosine schedule with warmup, random batches, no tqdm."""
    train, max_steps = job.train, job.max_steps
    return TrainingArguments(
        output_dir=str(job.out_dir),
        max_steps=max_steps,
        per_device_train_batch_size=train.batch_size,
        learning_rate=train.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=max(1, int(train.warmup_ratio * max_steps)),
        weight_decay=train.weight_decay,
        logging_steps=max(1, max_steps // 20),
        logging_nan_inf_filter=False,  # a NaN loss must reach on_step (the loop stops the run), not be hidden
        save_strategy="steps" if train.save_every_steps else "no",
        save_steps=train.save_every_steps or 500,
        save_total_limit=2,  # the previous checkpoint survives a kill during the next save
        report_to=[name for name in job.report_to if name != "tensorboard"],  # tensorboard: own callback
        seed=job.seed,
        data_seed=job.seed,
        use_cpu=not cuda,
        bf16=use_bf16(train.precision, cuda),
        gradient_accumulation_steps=train.gradient_accumulation_steps,
        **checkpointing_kwargs(train.gradient_checkpointing and cuda),
        # random batches: grouping by length made M0's batches all-plain or all-hinted and all one
        # digit count, and it learned single-digit sums far worse (76% vs 96% at 1 digit)
        train_sampling_strategy="random",
        remove_unused_columns=False,
        disable_tqdm=True,
        dataloader_num_workers=0,
        # dense models give every trainable weight a gradient each step; skips a graph walk per step (MoE: set True)
        ddp_find_unused_parameters=False,
    )
