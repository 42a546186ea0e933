"""The config's sections: one documented dataclass per recipe section, validated in ``__post_init__``."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

from selftaught.common.bounded import shown
from selftaught.config.checks import MAX_STEPS, TRACKERS, ConfigError, check_numbers, choice, parse_report_to, require


@dataclass
class ArithmeticConfig:
    """n-digit addition data (task.name=arithmetic)."""

    format: str = "compact"  # compact (reversed digits, one step per column) | scratchpad (paper)
    train_digits: list[int] = field(default_factory=lambda: list(range(1, 11)))  # digit counts asked
    test_digits: list[int] = field(default_factory=lambda: list(range(1, 11)))
    train_per_digit: int = 300  # training questions per digit count
    test_per_digit: int = 200  # held-out questions per digit count (1 digit: at most 25 exist spare)

    def __post_init__(self):
        choice("task.arithmetic", "format", self.format, ("compact", "scratchpad"))
        for name in ("train_digits", "test_digits"):
            digits = getattr(self, name)
            require(
                isinstance(digits, list) and digits and all(isinstance(d, int) and 1 <= d <= 40 for d in digits),
                f"task.arithmetic.{name} must be a non-empty list of digit counts in 1..40, got {shown(digits)}",
            )
        for name in ("train_per_digit", "test_per_digit"):
            require(getattr(self, name) >= 1, f"task.arithmetic.{name} must be >= 1, got {getattr(self, name)}")


@dataclass
class DataConfig:
    """Question/answer data for gsm8k, commonsenseqa and jsonl tasks.

    ``train`` / ``test`` take a local file (.jsonl, .json or .csv) or a `datasets` id (loaded with
    ``datasets.load_dataset(id, dataset_config, split=...)``); few-shot files use the STaR release's
    format: blocks ``Q: ...`` / ``A: ...`` separated by blank lines.
    """

    train: str = ""  # path or datasets id of the training questions
    test: str = ""  # path or datasets id of the evaluation questions
    dataset_config: str = ""  # datasets config name (e.g. "main" for openai/gsm8k)
    train_split: str = "train"  # split names when train/test are datasets ids
    test_split: str = "test"
    few_shot: str = ""  # few-shot prompt file ("" = zero-shot)
    few_shot_hinted: str = ""  # hinted few-shot file ("" = derived from few_shot)
    few_shot_style: str = "cot"  # cot (worked rationales) | direct (few-shot answers only: the paper's baseline)
    question_field: str = "question"  # jsonl task: field names (dotted for nested: question.stem)
    answer_field: str = "answer"
    id_field: str = ""  # "" = the row number
    answer_pattern: str = ""  # jsonl task: regex whose group 1 is the answer ("" = task default)
    normalizer: str = "text"  # jsonl task: text | number | choice
    max_examples: int = 0  # use only the first N rows of each split (0 = all)
    max_new_tokens: int = 256  # generation budget for one rationale
    # where a completion ends: it is cut before the first of these strings ([] = the task's own: the
    # next few-shot "Q:" block, and for gsm8k the "#### N" line); they also apply to chat models
    stop: list[str] = field(default_factory=list)
    # gsm8k with loop.filter=answer+rationale: a rationale with no calculator annotation that can be
    # evaluated passes the step check (false, the default: 18 of GSM8K's 1,319 gold test solutions have
    # none, and instruct models rarely write them) or fails it (true: nothing unchecked is kept)
    require_checked_step: bool = False

    def __post_init__(self):
        require(
            isinstance(self.stop, list) and all(isinstance(s, str) and s for s in self.stop),
            f"task.data.stop must be a list of non-empty strings, got {self.stop!r}",
        )
        choice("task.data", "normalizer", self.normalizer, ("text", "number", "choice"))
        choice("task.data", "few_shot_style", self.few_shot_style, ("cot", "direct"))
        require(self.max_examples >= 0, f"task.data.max_examples must be >= 0, got {self.max_examples}")
        require(self.max_new_tokens >= 1, f"task.data.max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.answer_pattern:
            import re

            try:
                compiled = re.compile(self.answer_pattern)
            except re.error as err:
                raise ConfigError(f"task.data.answer_pattern is not a valid regex: {err}") from None
            require(compiled.groups >= 1, "task.data.answer_pattern needs one capturing group for the answer")


@dataclass
class WordProblemsConfig:
    """Generated multi-step word problems in GSM8K's format (task.name=word_problems)."""

    train_steps: list[int] = field(default_factory=lambda: [2, 3, 4, 5])  # operations per problem
    test_steps: list[int] = field(default_factory=lambda: [2, 3, 4, 5])
    train_per_step: int = 500  # training problems per step count
    test_per_step: int = 100
    max_number: int = 9  # numbers told in the stories are at most this
    max_value: int = 30  # no quantity in a story (so no step's result) grows past this
    few_shot_examples: int = 4  # solved 1-2 step problems in the prompt
    # also require one calculation per step using every number of the story (GSM8K's step check
    # alone keeps rationales that skip steps and land on the answer by coincidence)
    check_every_step: bool = True
    # the embedded M0 (model.name_or_path=embedded) is pretrained on text of solved easy problems
    pretrain_steps: list[int] = field(default_factory=lambda: [1, 2, 3])  # operations per pretraining problem
    pretrain_max_number: int = 9
    # share of its (unhinted) solutions of 3+ step problems that forget the story's last step and give the
    # value before it as the answer, as sloppy worked solutions on the web do: M0 then often stops one
    # step short, and STaR's filter is what teaches it to finish (0: every solution is right)
    pretrain_sloppy: float = 0.0
    vocab_size: int = 512  # its BPE tokenizer, trained on that text

    def __post_init__(self):
        for name in ("train_steps", "test_steps", "pretrain_steps"):
            steps = getattr(self, name)
            require(
                isinstance(steps, list) and steps and all(isinstance(n, int) and 1 <= n <= 12 for n in steps),
                f"task.word_problems.{name} must be a non-empty list of step counts in 1..12, got {shown(steps)}",
            )
        for name in ("train_per_step", "test_per_step", "few_shot_examples"):
            require(getattr(self, name) >= 1, f"task.word_problems.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_number", "pretrain_max_number"):
            value = getattr(self, name)
            require(5 <= value <= 200, f"task.word_problems.{name} must be in 5..200, got {value}")
        require(
            2 * self.max_number <= self.max_value <= 9999,
            f"task.word_problems.max_value must be in 2*max_number..9999, got {self.max_value}",
        )
        require(
            0.0 <= self.pretrain_sloppy < 1.0,
            f"task.word_problems.pretrain_sloppy must be in [0, 1), got {self.pretrain_sloppy}",
        )
        require(
            300 <= self.vocab_size <= 50000,
            f"task.word_problems.vocab_size must be in 300..50000, got {self.vocab_size}",
        )


@dataclass
class TaskConfig:
    name: str = "arithmetic"  # arithmetic | gsm8k | commonsenseqa | jsonl | word_problems | package.module:Class
    arithmetic: ArithmeticConfig = field(default_factory=ArithmeticConfig)
    word_problems: WordProblemsConfig = field(default_factory=WordProblemsConfig)
    data: DataConfig = field(default_factory=DataConfig)

    def __post_init__(self):
        require(isinstance(self.name, str) and self.name != "", "task.name must be a non-empty string")


@dataclass
class BaseModelConfig:
    """The embedded model M0, built and trained by selftaught when model.name_or_path=embedded."""

    num_layers: int = 4
    hidden_size: int = 128
    num_heads: int = 4
    positions: str = "digit"  # digit (index within its number) | sequential (ordinary)
    max_period: int = 32  # digit positions: training spaces columns by a random period in [8, max_period]
    max_digits: int = 3  # M0 sees 1..max_digits-digit sums only
    hint_fraction: float = 0.5  # share of M0's examples with the hinted prompt (makes rationalization possible)
    steps: int = (
        600  # 1000 gave a stronger M0 that STaR barely had to teach, in 1.7x the time (benchmarks/default_run.py)
    )
    batch_size: int = 64
    learning_rate: float = 1e-3  # 2e-3 (500 steps) left seed 0's M0 at 0.7% test accuracy
    cache_dir: str = ".cache/selftaught/base"  # M0 is cached here by config hash

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

    enabled: bool = False
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: str = "all-linear"  # PEFT's shorthand, or comma-separated module names
    save_merged: bool = False  # also save merged full weights in checkpoint/merged/ (loads without PEFT)

    def __post_init__(self):
        require(self.r >= 1, f"model.lora.r must be >= 1, got {self.r}")
        require(self.alpha >= 1, f"model.lora.alpha must be >= 1, got {self.alpha}")
        require(0 <= self.dropout < 1, f"model.lora.dropout must be in [0, 1), got {self.dropout}")


@dataclass
class ModelConfig:
    name_or_path: str = "embedded"  # 'embedded' (tiny model trained here), a local path, a hub id or a .gguf file
    # with a folder in name_or_path: the GGUF file in it; a GGUF file is converted once (keyed by its
    # SHA-256) into a plain Hugging Face folder under model.base.cache_dir, which the run then uses
    gguf_file: str = ""
    trust_remote_code: bool = False  # only for models whose code you have read
    device: str = "auto"  # auto (cuda if present) | cpu | cuda
    dtype: str = "auto"  # auto (bf16 on cuda, fp32 on cpu) | float32 | bfloat16 | float16
    chat_template: str = "auto"  # auto (use the tokenizer's if it has one) | on | off
    # chat models: a system message before every prompt (generation and training alike); where the
    # template refuses or drops the system role (Gemma), it opens the user turn instead. "" = none
    system_prompt: str = ""
    base: BaseModelConfig = field(default_factory=BaseModelConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)

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
    backend: str = "auto"  # auto (sampler for digit positions, else hf) | sampler | hf | vllm
    batch_size: int = 500  # prompts per forward batch
    chunk_size: int = 1000  # prompts per saved chunk: a kill loses at most one chunk of generation
    num_samples: int = 1  # rationales sampled per question
    temperature: float = 0.0  # 0 = greedy, as in the paper
    top_p: float = 1.0
    # stop each completion where the task says it ends (before the next few-shot question, after
    # GSM8K's "#### N" line) and keep only that; false generates to max_new_tokens and keeps it all
    stop_at_answer: bool = True
    # encode the prompts' shared few-shot prefix once and reuse its KV cache for every batch (sampler, hf;
    # vllm's automatic prefix caching is always on); greedy output is the same either way
    prefix_cache: bool = True
    # weights' dtype while generating: auto = bf16 where the hardware computes it natively (CUDA, or a CPU
    # with AVX512-BF16/AMX), else model.dtype's choice | bf16 | fp32. Training and checkpoints stay fp32
    precision: str = "auto"

    def __post_init__(self):
        choice("generation", "backend", self.backend, ("auto", "sampler", "hf", "vllm"))
        choice("generation", "precision", self.precision, ("auto", "bf16", "fp32"))
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
    first_steps: int = 125  # optimizer steps in iteration 1 (paper: 40 for GPT-J)
    steps_growth: float = 1.2  # steps multiply by this each iteration (paper: 1.2)
    batch_size: int = 64  # examples per step over all train processes (each takes batch_size / processes)
    learning_rate: float = 5e-4
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    gradient_accumulation_steps: int = 1  # effective batch = batch_size x this
    gradient_checkpointing: bool = False  # trade compute for memory (GPU, large models)
    max_length: int = 2048  # tokens per training example (longer ones are truncated)
    save_every_steps: int = 50  # checkpoint the trainer this often, so a kill loses at most this many steps
    packing: bool = True  # pack each batch's examples into rows (no padding compute); false: pad every row
    # auto: bf16 autocast where the hardware computes bf16 natively (a bf16 GPU; a CPU with AVX512-BF16 or AMX,
    # 1.3x fp32 there), else fp32; bf16 | fp32 force one. Weights and optimizer state stay fp32 either way
    precision: str = "auto"

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

    def steps_for(self, iteration: int) -> int:
        """Steps in 1-based ``iteration``: first_steps * growth^(iteration-1), rounded."""
        return int(round(self.first_steps * self.steps_growth ** (iteration - 1)))


@dataclass
class LoopConfig:
    iterations: int = 5
    mode: str = "star"  # star | direct (fine-tune on question -> answer, no rationale)
    rationalization: bool = True  # retry wrong questions with the answer as a hint
    filter: str = "answer+rationale"  # answer | answer+rationale (also require verify_rationale)
    restart_from_base: bool = True  # paper: fine-tune the original M0 each iteration; False continues
    few_shot_in_training: bool = False  # keep the few-shot prefix in stored training prompts
    # prompt fine-tuned models (M1, M2, ...) with the few-shot prefix when they generate and are evaluated; false
    # prompts them as they were trained, without it (the STaR code's --no_prompt); M0 always gets it
    few_shot_for_trained: bool = True
    # stop once this many iterations in a row improve accuracy by < min_improvement, or once accuracy is within
    # min_improvement of 100% (no iteration could count as progress); 0 = never stop early
    patience: int = 1
    min_improvement: float = 0.005  # accuracy gain (fraction) that counts as progress
    # V-STaR: after the last iteration, train a verifier with DPO on (right, wrong) pairs of the iterations'
    # own samples (needs generation.num_samples > 1); settings in the `verifier` section
    verifier: bool = False

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

    init: str = "last"  # last (the last iteration's model: the paper's SFT generator) | base (M0)
    iterations: int = 0  # pairs from the first N iterations' samples (0 = every finished iteration)
    steps: int = 150  # optimizer steps
    batch_size: int = 16  # pairs per step (each pair is two sequences)
    learning_rate: float = 5e-5
    beta: float = 0.1  # DPO's KL strength; the score is the implicit reward beta * log(verifier / reference)
    loss: str = "sigmoid"  # sigmoid (DPO) | rpo (DPO + NLL on the right solution: loss_type ["sigmoid", "sft"])
    lora: bool = False  # train LoRA adapters (model.lora's r, alpha, dropout, targets) instead of all weights
    max_length: int = 1024  # tokens of prompt + solution (longer ones are cut)
    save_every_steps: int = 50  # Trainer checkpoints, so a kill loses at most this many steps

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

    generation_workers: int = 1  # Ray actors, one model replica each; > 1 starts a local Ray unless ray_address
    ray_address: str = ""  # join this Ray cluster ("auto", "ray://head:10001"); "" = local Ray when workers > 1
    gpus_per_worker: float = 1.0  # GPUs per generation worker where the cluster has GPUs (vllm: tensor parallel)
    train_processes: int = 1  # training processes (accelerate launch: DDP, or accelerate_config's FSDP/DeepSpeed)
    accelerate_config: str = ""  # accelerate config file for train_processes > 1, e.g. configs/fsdp.yaml

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
    seed: int = 0
    task: TaskConfig = field(default_factory=TaskConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    loop: LoopConfig = field(default_factory=LoopConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)
    verifier: VerifierConfig = field(default_factory=VerifierConfig)
    report_to: str = "none"  # experiment trackers, comma-separated: none | tensorboard | wandb | mlflow | trackio

    def __post_init__(self):
        for name in parse_report_to(self.report_to):
            choice("", "report_to", name, ("none", *TRACKERS))
        check_numbers(self, "")
        require(
            self.train.batch_size % self.distributed.train_processes == 0,
            f"train.batch_size ({self.train.batch_size}) must divide by distributed.train_processes "
            f"({self.distributed.train_processes}): each process takes an equal share of the same global batch",
        )
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

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
