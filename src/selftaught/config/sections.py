"""The config's sections: one dataclass per recipe section, each field with its help text in its metadata
(`setting`; ``selftaught config`` prints them), validated in ``__post_init__``."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

from selftaught.common.bounded import shown
from selftaught.config.checks import MAX_STEPS, TRACKERS, check_numbers, choice, parse_report_to, require
from selftaught.config.fields import section, setting
from selftaught.config.task_sections import TaskConfig

OBJECTIVES = ("sft", "rpo")  # train.objective: the generator's fine-tuning loss


@dataclass
class BaseModelConfig:
    """The embedded model M0, built and trained by selftaught when model.name_or_path=embedded."""

    num_layers: int = setting(4, "M0's transformer layers")
    hidden_size: int = setting(128, "M0's hidden size (divisible by num_heads)")
    num_heads: int = setting(4, "M0's attention heads")
    positions: str = setting("digit", "digit (position = index within its number) | sequential (ordinary)")
    max_period: int = setting(32, "digit positions: training spaces columns by a random period in [8, max_period]")
    max_digits: int = setting(3, "M0 sees 1..max_digits-digit sums only")
    hint_fraction: float = setting(
        0.5, "share of M0's examples with the hinted prompt (makes rationalization possible)"
    )
    # 1000 gave a stronger M0 that STaR barely had to teach, in 1.7x the time (benchmarks/default_run.py)
    steps: int = setting(600, "M0's pretraining optimizer steps")
    batch_size: int = setting(64, "M0's pretraining examples per step")
    # 2e-3 (500 steps) left seed 0's M0 at 0.7% test accuracy
    learning_rate: float = setting(1e-3, "M0's pretraining learning rate")
    cache_dir: str = setting(".cache/selftaught/base", "M0 (and converted GGUF models) are cached here by config hash")

    def __post_init__(self):
        choice("model.base", "positions", self.positions, ("digit", "sequential"))
        for name in ("num_layers", "hidden_size", "num_heads", "max_digits", "steps", "batch_size"):
            require(getattr(self, name) >= 1, f"model.base.{name} must be >= 1, got {getattr(self, name)}")
        require(self.max_period >= 8, f"model.base.max_period must be >= 8, got {self.max_period}")
        require(self.hidden_size % self.num_heads == 0, "model.base.hidden_size must be divisible by num_heads")
        require(
            0.0 <= self.hint_fraction <= 1.0, f"model.base.hint_fraction must be in [0, 1], got {self.hint_fraction}"
        )
        require(self.learning_rate > 0, f"model.base.learning_rate must be > 0, got {self.learning_rate}")


@dataclass
class LoraConfig:
    """LoRA through PEFT: train adapters only; merged into the weights for generation."""

    enabled: bool = setting(False, "train LoRA adapters instead of all weights")
    r: int = setting(16, "LoRA rank")
    alpha: int = setting(32, "LoRA scaling alpha (the update is scaled by alpha / r)")
    dropout: float = setting(0.05, "dropout on the LoRA layers' input, in [0, 1)")
    target_modules: str = setting("all-linear", "modules to adapt: PEFT's shorthand, or comma-separated module names")
    save_merged: bool = setting(False, "also save merged full weights in checkpoint/merged/ (loads without PEFT)")

    def __post_init__(self):
        require(self.r >= 1, f"model.lora.r must be >= 1, got {self.r}")
        require(self.alpha >= 1, f"model.lora.alpha must be >= 1, got {self.alpha}")
        require(0 <= self.dropout < 1, f"model.lora.dropout must be in [0, 1), got {self.dropout}")


@dataclass
class ModelConfig:
    """The model STaR starts from (M0) and how it is loaded."""

    name_or_path: str = setting(
        "embedded",
        "'embedded' (tiny model trained here), a local path, a hub id, a .gguf file (or a folder with gguf_file),"
        " or package:NAME (an installed package's GGUF file)",
    )
    gguf_file: str = setting(
        "",
        "with a folder in name_or_path: the GGUF file in it; a GGUF file is converted once (keyed by its SHA-256)"
        " into a plain Hugging Face folder under model.base.cache_dir, which the run then uses",
    )
    trust_remote_code: bool = setting(False, "run the model repo's own code; only for models whose code you have read")
    device: str = setting("auto", "auto (cuda if present) | cpu | cuda")
    dtype: str = setting("auto", "auto (bf16 on cuda, fp32 on cpu) | float32 | bfloat16 | float16")
    chat_template: str = setting("auto", "auto (use the tokenizer's if it has one) | on | off")
    system_prompt: str = setting(
        "",
        "chat models: a system message before every prompt (generation and training alike); where the template"
        ' refuses or drops the system role (Gemma), it opens the user turn instead. "" = none',
    )
    base: BaseModelConfig = section(BaseModelConfig, "the embedded model M0 (name_or_path=embedded)")
    lora: LoraConfig = section(LoraConfig, "LoRA adapters through PEFT")

    def __post_init__(self):
        require(isinstance(self.name_or_path, str) and self.name_or_path != "", "model.name_or_path is empty")
        choice("model", "device", self.device, ("auto", "cpu", "cuda"))
        choice("model", "dtype", self.dtype, ("auto", "float32", "bfloat16", "float16"))
        choice("model", "chat_template", self.chat_template, ("auto", "on", "off"))
        require(
            isinstance(self.system_prompt, str), f"model.system_prompt must be a string, got {self.system_prompt!r}"
        )


@dataclass
class GenerationConfig:
    """Sampling rationales: backend, batches, temperature."""

    backend: str = setting("auto", "auto (sampler for digit positions, else hf) | sampler | hf | vllm")
    batch_size: int = setting(500, "prompts per forward batch")
    chunk_size: int = setting(1000, "prompts per saved chunk: a kill loses at most one chunk of generation")
    num_samples: int = setting(1, "rationales sampled per question")
    temperature: float = setting(0.0, "sampling temperature; 0 = greedy, as in the paper")
    top_p: float = setting(1.0, "nucleus sampling: keep the smallest set of tokens with this much probability")
    stop_at_answer: bool = setting(
        True,
        "stop each completion where the task says it ends (before the next few-shot question, after GSM8K's"
        ' "#### N" line) and keep only that; false generates to max_new_tokens and keeps it all',
    )
    prefix_cache: bool = setting(
        True,
        "encode the prompts' shared few-shot prefix once and reuse its KV cache for every batch (sampler, hf;"
        " vllm's automatic prefix caching is always on); greedy output is the same either way",
    )
    precision: str = setting(
        "auto",
        "weights' dtype while generating: auto = bf16 where the hardware computes it natively (CUDA, or a CPU"
        " with AVX512-BF16/AMX), fp16-weights on other x86 CPUs (on a CPU either only for a model of 20M+"
        " parameters), else model.dtype's choice | bf16 | fp32 | fp16-weights (fp32 with every layer but the"
        " output layer multiplying through an fp16 copy of its weights: fbgemm, x86 CPUs, not vllm)."
        " Training and checkpoints stay fp32",
    )
    output_screen: bool = setting(
        True,
        "greedy decoding with an fp32 output layer of a 32k+ vocabulary on a CPU finds each next token with an"
        " fp16 copy of the layer (int8 without fbgemm) and exact fp32 scores of its top 64, certified by an error"
        " bound (else of every token the bound cannot rule out): the same tokens, a quarter of the layer's time"
        " per step; false computes the full layer",
    )

    def __post_init__(self):
        choice("generation", "backend", self.backend, ("auto", "sampler", "hf", "vllm"))
        choice("generation", "precision", self.precision, ("auto", "bf16", "fp32", "fp16-weights"))
        require(
            not (self.precision == "fp16-weights" and self.backend == "vllm"),
            "generation.precision=fp16-weights is for the in-process backends (hf, sampler), not vllm",
        )
        require(self.batch_size >= 1, f"generation.batch_size must be >= 1, got {self.batch_size}")
        require(self.chunk_size >= 1, f"generation.chunk_size must be >= 1, got {self.chunk_size}")
        require(self.num_samples >= 1, f"generation.num_samples must be >= 1, got {self.num_samples}")
        require(self.temperature >= 0, f"generation.temperature must be >= 0, got {self.temperature}")
        require(0 < self.top_p <= 1, f"generation.top_p must be in (0, 1], got {self.top_p}")
        require(
            self.num_samples == 1 or self.temperature > 0,
            "generation.num_samples > 1 needs generation.temperature > 0 (greedy samples are identical)",
        )


@dataclass
class TrainConfig:
    """Fine-tuning on the kept rationales (transformers' Trainer)."""

    first_steps: int = setting(125, "optimizer steps in iteration 1 (paper: 40 for GPT-J)")
    steps_growth: float = setting(1.2, "steps multiply by this each iteration (paper: 1.2)")
    batch_size: int = setting(64, "examples per step over all train processes (each takes batch_size / processes)")
    learning_rate: float = setting(5e-4, "peak learning rate (AdamW; cosine decay after warmup)")
    warmup_ratio: float = setting(0.05, "share of an iteration's steps spent warming the learning rate up")
    weight_decay: float = setting(0.0, "AdamW weight decay")
    gradient_accumulation_steps: int = setting(
        1, "micro-batches per optimizer step: effective batch = batch_size x this"
    )
    gradient_checkpointing: bool = setting(False, "trade compute for memory (GPU, large models)")
    max_length: int = setting(2048, "tokens per training example (longer ones are truncated)")
    save_every_steps: int = setting(
        50, "checkpoint the trainer this often, so a kill loses at most this many steps (0 = never)"
    )
    packing: bool = setting(True, "pack each batch's examples into rows (no padding compute); false: pad every row")
    precision: str = setting(
        "auto",
        "auto: bf16 autocast where the hardware computes bf16 natively (a bf16 GPU; a CPU with AVX512-BF16 or"
        " AMX, 1.3x fp32 there), else fp32; bf16 | fp32 force one. Weights and optimizer state keep model.dtype"
        " (auto: fp32 on CPU, bf16 on CUDA)",
    )
    objective: str = setting(
        "sft",
        "sft (the paper: cross-entropy on the kept rationales) | rpo (iterative reasoning preference optimisation,"
        " Pang et al. 2024: TRL's DPO on (kept, wrong) rationale pairs of the same question, plus the NLL of the kept;"
        " a question with no wrong sample is trained on by the NLL only; reference model M0; loop.mode=star and one"
        " training process only; each step runs the reference too and two sequences per example)",
    )
    rpo_beta: float = setting(0.1, "rpo: DPO's beta, the strength of the KL pull towards M0 (Pang et al.: 0.1)")
    rpo_alpha: float = setting(1.0, "rpo: weight of the NLL of the kept rationale beside the DPO loss (Pang et al.: 1)")

    def __post_init__(self):
        require(self.gradient_accumulation_steps >= 1, "train.gradient_accumulation_steps must be >= 1")
        require(self.max_length >= 8, f"train.max_length must be >= 8, got {self.max_length}")
        require(self.save_every_steps >= 0, f"train.save_every_steps must be >= 0, got {self.save_every_steps}")
        require(self.first_steps >= 1, f"train.first_steps must be >= 1, got {self.first_steps}")
        require(self.steps_growth >= 1.0, f"train.steps_growth must be >= 1, got {self.steps_growth}")
        require(self.batch_size >= 1, f"train.batch_size must be >= 1, got {self.batch_size}")
        require(self.learning_rate > 0, f"train.learning_rate must be > 0, got {self.learning_rate}")
        require(0 <= self.warmup_ratio < 1, f"train.warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        choice("train", "precision", self.precision, ("auto", "bf16", "fp32"))
        choice("train", "objective", self.objective, OBJECTIVES)
        require(self.rpo_beta > 0, f"train.rpo_beta must be > 0, got {self.rpo_beta}")
        require(self.rpo_alpha >= 0, f"train.rpo_alpha must be >= 0, got {self.rpo_alpha}")

    def steps_for(self, iteration: int) -> int:
        """Steps in 1-based ``iteration``: first_steps * growth^(iteration-1), rounded."""
        return int(round(self.first_steps * self.steps_growth ** (iteration - 1)))


@dataclass
class LoopConfig:
    """The STaR outer loop: iterations, rationalization, the filter, early stopping."""

    iterations: int = setting(5, "outer STaR iterations (at most; see patience)")
    mode: str = setting("star", "star | direct (fine-tune on question -> answer, no rationale)")
    rationalization: bool = setting(True, "retry wrong questions with the answer as a hint")
    filter: str = setting("answer+rationale", "answer | answer+rationale (also require the task's step check)")
    restart_from_base: bool = setting(True, "paper: fine-tune the original M0 each iteration; false continues")
    few_shot_in_training: bool = setting(False, "keep the few-shot prefix in stored training prompts")
    few_shot_for_trained: bool = setting(
        True,
        "prompt fine-tuned models (M1, M2, ...) with the few-shot prefix when they generate and are evaluated;"
        " false prompts them as they were trained, without it (the STaR code's --no_prompt); M0 always gets it",
    )
    patience: int = setting(
        1,
        "stop once this many iterations in a row improve accuracy by < min_improvement, or once accuracy is"
        " within min_improvement of 100% (no iteration could count as progress); 0 = never stop early",
    )
    min_improvement: float = setting(0.005, "accuracy gain (fraction) that counts as progress")
    verifier: bool = setting(
        False,
        "V-STaR: after the last iteration, train a verifier with DPO on (right, wrong) pairs of the iterations'"
        " own samples (needs generation.num_samples > 1); settings in the verifier section",
    )

    def __post_init__(self):
        require(self.iterations >= 1, f"loop.iterations must be >= 1, got {self.iterations}")
        choice("loop", "mode", self.mode, ("star", "direct"))
        choice("loop", "filter", self.filter, ("answer", "answer+rationale"))
        require(self.patience >= 0, f"loop.patience must be >= 0, got {self.patience}")
        require(self.min_improvement >= 0, f"loop.min_improvement must be >= 0, got {self.min_improvement}")


@dataclass
class VerifierConfig:
    """The V-STaR verifier (Hosseini et al. 2024): DPO (TRL's `DPOTrainer`) on (right, wrong) pairs of the
    generator's own samples of the same question; at test time it picks the best of k samples."""

    init: str = setting("last", "last (the last iteration's model: the paper's SFT generator) | base (M0)")
    iterations: int = setting(0, "pairs from the first N iterations' samples (0 = every finished iteration)")
    steps: int = setting(150, "optimizer steps")
    batch_size: int = setting(16, "pairs per step (each pair is two sequences)")
    learning_rate: float = setting(5e-5, "DPO learning rate")
    beta: float = setting(0.1, "DPO's KL strength; the score is the implicit reward beta * log(verifier / reference)")
    loss: str = setting(
        "sigmoid", 'sigmoid (DPO) | rpo (DPO + NLL on the right solution: loss_type ["sigmoid", "sft"])'
    )
    lora: bool = setting(False, "train LoRA adapters (model.lora's r, alpha, dropout, targets) instead of all weights")
    max_length: int = setting(1024, "tokens of prompt + solution (longer ones are cut)")
    save_every_steps: int = setting(50, "Trainer checkpoints, so a kill loses at most this many steps")

    def __post_init__(self):
        choice("verifier", "init", self.init, ("last", "base"))
        choice("verifier", "loss", self.loss, ("sigmoid", "rpo"))
        require(self.iterations >= 0, f"verifier.iterations must be >= 0, got {self.iterations}")
        for name in ("steps", "batch_size"):
            require(getattr(self, name) >= 1, f"verifier.{name} must be >= 1, got {getattr(self, name)}")
        require(self.learning_rate > 0, f"verifier.learning_rate must be > 0, got {self.learning_rate}")
        require(self.beta > 0, f"verifier.beta must be > 0, got {self.beta}")
        require(self.max_length >= 8, f"verifier.max_length must be >= 8, got {self.max_length}")
        require(self.save_every_steps >= 0, f"verifier.save_every_steps must be >= 0, got {self.save_every_steps}")


@dataclass
class DistributedConfig:
    """Where generation and training run (one process by default). Results do not depend on these:
    generation chunks keep their seeds on any worker, and training keeps its global batch."""

    generation_workers: int = setting(
        1, "Ray actors, one model replica each; > 1 starts a local Ray unless ray_address"
    )
    ray_address: str = setting(
        "", 'join this Ray cluster ("auto", "ray://head:10001"); "" = local Ray when workers > 1'
    )
    gpus_per_worker: float = setting(
        1.0, "GPUs per generation worker where the cluster has GPUs (vllm: tensor parallel)"
    )
    train_processes: int = setting(
        1, "training processes (accelerate launch: DDP, or accelerate_config's FSDP/DeepSpeed)"
    )
    accelerate_config: str = setting("", "accelerate config file for train_processes > 1, e.g. configs/fsdp.yaml")

    def __post_init__(self):
        require(
            self.generation_workers >= 1, f"distributed.generation_workers must be >= 1, got {self.generation_workers}"
        )
        require(self.train_processes >= 1, f"distributed.train_processes must be >= 1, got {self.train_processes}")
        require(self.gpus_per_worker >= 0, f"distributed.gpus_per_worker must be >= 0, got {self.gpus_per_worker}")
        require(
            self.accelerate_config == "" or Path(self.accelerate_config).is_file(),
            f"distributed.accelerate_config {shown(self.accelerate_config)} does not exist",
        )


@dataclass
class Config:
    """A whole run; a recipe's top-level keys are these fields."""

    seed: int = setting(0, "seed of data generation, sampling and training")
    task: TaskConfig = section(TaskConfig, "the task")
    model: ModelConfig = section(ModelConfig, "the model")
    generation: GenerationConfig = section(GenerationConfig, "sampling rationales")
    train: TrainConfig = section(TrainConfig, "fine-tuning")
    loop: LoopConfig = section(LoopConfig, "the STaR loop")
    distributed: DistributedConfig = section(DistributedConfig, "Ray workers and training processes")
    verifier: VerifierConfig = section(VerifierConfig, "the V-STaR verifier")
    report_to: str = setting(
        "none", "experiment trackers, comma-separated: none | tensorboard | wandb | mlflow | trackio"
    )

    def __post_init__(self):
        for name in parse_report_to(self.report_to):
            choice("", "report_to", name, ("none", *TRACKERS))
        check_numbers(self, "")
        require(
            self.train.batch_size % self.distributed.train_processes == 0,
            f"train.batch_size ({self.train.batch_size}) must divide by distributed.train_processes "
            f"({self.distributed.train_processes}): each process takes an equal share of the same global batch",
        )
        self._check_objective()
        require(
            not self.loop.verifier or (self.generation.num_samples > 1 and self.loop.mode == "star"),
            "loop.verifier needs generation.num_samples > 1 (and loop.mode=star): the verifier learns from "
            "right and wrong samples of the same question",
        )
        # log-space: steps_growth ** (iterations - 1) overflows a float long before it is refused
        log_steps = math.log(self.train.first_steps) + (self.loop.iterations - 1) * math.log(self.train.steps_growth)
        require(
            log_steps <= math.log(MAX_STEPS),
            f"train.first_steps x train.steps_growth^(loop.iterations-1) exceeds {MAX_STEPS:.0e} optimizer steps "
            f"in iteration {self.loop.iterations}; lower train.steps_growth or loop.iterations",
        )

    def _check_objective(self) -> None:
        if self.train.objective != "rpo":
            return
        require(
            self.loop.mode == "star",
            "train.objective=rpo needs loop.mode=star: loop.mode=direct samples no wrong rationales to prefer against",
        )
        require(
            self.distributed.train_processes == 1,
            "train.objective=rpo trains in one process: set distributed.train_processes=1",
        )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
