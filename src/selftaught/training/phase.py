"""One STaR training phase as a job that any number of processes can run together.

A `TrainJob` names everything the phase needs by value or by path (init model, training records, step
count, config, scratch folder), so the same job runs in the loop's own process, in processes that
`training.launch` starts with ``accelerate launch``, or on the ranks of a user's own ``torchrun`` /
``accelerate launch`` / Slurm launch (`training.ranks`). In every case the global batch is
``train.batch_size x gradient_accumulation_steps``: each of N processes takes ``batch_size / N``.
Only the main process saves the trained model.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from selftaught.config import Config, config_from_dict
from selftaught.config.checks import parse_report_to
from selftaught.models import absolute_model_path, free_memory, load_model, save_model, scheme_name
from selftaught.samples import read_records
from selftaught.training.finite import check_weights
from selftaught.training.sft import SftJob, add_lora, encode_pairs, train_sft


@dataclass(frozen=True)
class TrainJob:
    init_path: str  # the model training starts from (M0, or the previous iteration's)
    records_path: str  # train.jsonl: {"prompt", "completion", ...} per line
    steps: int  # optimizer steps
    scratch: str  # the Trainer's checkpoints (a resumed job continues from the last complete one)
    logs_dir: str  # tracker logs (TensorBoard) that outlive the scratch folder
    label: str  # names the phase in messages
    config: dict  # `Config.to_dict()`
    pairs_path: str = ""  # train.objective=rpo: pairs.jsonl, the (chosen, rejected) pairs of the records
    reference_path: str = ""  # train.objective=rpo: DPO's reference model (M0)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @staticmethod
    def from_json(text: str) -> TrainJob:
        return TrainJob(**json.loads(text))


def world_size() -> int:
    """Processes training together (set by torchrun / accelerate launch; 1 when run directly)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def run_job(
    job: TrainJob, out_dir: Path | None, on_step: Callable[[int, float | None], None] | None = None
) -> list[dict]:
    """Train as ``job`` says (on every process of the launch); the main process saves to ``out_dir``.

    Returns the loss log. An adapter is saved on its own when its base is a plain model folder; a
    model that started from an adapter is saved merged. ``train.objective=rpo`` trains with `rpo.run_rpo_job`.
    """
    config = config_from_dict(job.config)
    if config.train.objective == "rpo":
        from selftaught.training.rpo import run_rpo_job  # it imports this module

        return run_rpo_job(job, out_dir, on_step)
    t, lora = config.train, config.model.lora
    _use_local_gpu()
    lm = load_model(job.init_path, config.model)
    model = add_lora(lm.model, lora.r, lora.alpha, lora.dropout, lora.target_modules) if lora.enabled else lm.model
    pairs = [(lm.render(r.prompt), r.completion) for r in read_records(job.records_path)]
    features = encode_pairs(
        lm.tokenizer, lm.scheme, pairs, t.max_length, config.model.base.max_period, config.seed, lm.add_special_tokens
    )
    per_process = replace(t, batch_size=t.batch_size // world_size())  # the global batch stays the same
    report_to = tuple(parse_report_to(config.report_to))
    sft_job = SftJob(job.scratch, job.steps, per_process, config.seed, report_to=report_to, logs_dir=job.logs_dir)
    gathered: dict = {}
    log = train_sft(
        model, features, lm.tokenizer.pad_token_id, sft_job,
        on_step=on_step, on_trained=lambda trainer: gathered.update(_gather_sharded(trainer)),
    )  # fmt: skip
    if out_dir is not None and is_main_process():
        if gathered:  # FSDP / DeepSpeed: this process's model holds shards; rebuild it whole
            model = _whole_model(job.init_path, config, gathered)
        check_weights(model, job.label)
        save_trained(model, lm, config, job.init_path, out_dir)
    del model, lm
    free_memory()  # the next phase (generation, or waiting for rank 0) needs it back
    return log


def _gather_sharded(trainer) -> dict:
    """The full state dict of an FSDP or ZeRO-3 model, on the main process (a collective: every process
    calls it); {} for one process, DDP and ZeRO-1/2, whose processes each hold the whole model."""
    deepspeed = getattr(trainer, "is_deepspeed_enabled", False)
    if deepspeed:
        stage = trainer.accelerator.state.deepspeed_plugin.zero_stage
        state = trainer.accelerator.get_state_dict(trainer.model_wrapped) if stage == 3 else None
        from transformers.integrations.deepspeed import unset_hf_deepspeed_config

        unset_hf_deepspeed_config()  # else every later from_pretrained (M0, evaluation) partitions alone, and hangs
        return state or {}
    if getattr(trainer, "is_fsdp_enabled", False):
        return trainer.accelerator.get_state_dict(trainer.model_wrapped) or {}
    return {}


def _whole_model(init_path: str, config: Config, state: dict):
    """A fresh copy of the starting model (with fresh adapters under LoRA) holding the gathered weights."""
    lora = config.model.lora
    model = load_model(init_path, config.model).model
    if lora.enabled:
        model = add_lora(model, lora.r, lora.alpha, lora.dropout, lora.target_modules)
    model.load_state_dict(state)
    return model


def save_trained(model, lm, config: Config, init_path: str, out_dir: Path) -> None:
    lora = config.model.lora
    # recorded as an absolute path, so the adapter loads from any directory
    adapter_base = absolute_model_path(init_path) if lora.enabled and not _is_adapter(init_path) else None
    if lora.enabled and adapter_base is None:
        model = model.merge_and_unload()
    save_model(model, lm.tokenizer, scheme_name(lm.scheme), out_dir, base_model=adapter_base)
    if adapter_base and lora.save_merged:
        save_model(model.merge_and_unload(), lm.tokenizer, scheme_name(lm.scheme), Path(out_dir) / "merged")


def _is_adapter(path: Path | str) -> bool:
    return (Path(str(path)) / "adapter_config.json").is_file()


def _use_local_gpu() -> None:
    """Under a multi-process launch, "cuda" means this process's own GPU (LOCAL_RANK), not GPU 0."""
    import torch

    if world_size() > 1 and torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
