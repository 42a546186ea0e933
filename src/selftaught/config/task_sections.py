"""The task's sections of the config (``task.*``): which task, and its data or generated problems."""

from __future__ import annotations

from dataclasses import dataclass

from selftaught.common.bounded import shown
from selftaught.config.checks import ConfigError, choice, require
from selftaught.config.fields import section, setting


@dataclass
class ArithmeticConfig:
    """n-digit addition data (task.name=arithmetic)."""

    format: str = setting("compact", "compact (reversed digits, one step per column) | scratchpad (the paper's)")
    train_digits: list[int] = setting(factory=lambda: list(range(1, 11)), help="digit counts of training questions")
    test_digits: list[int] = setting(factory=lambda: list(range(1, 11)), help="digit counts of test questions")
    train_per_digit: int = setting(300, "training questions per digit count")
    test_per_digit: int = setting(200, "held-out questions per digit count (1 digit: at most 25 exist spare)")

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

    train: str = setting("", "training questions: a .jsonl, .json or .csv file, or a datasets id")
    test: str = setting("", "evaluation questions: a .jsonl, .json or .csv file, or a datasets id")
    dataset_config: str = setting("", 'datasets config name (e.g. "main" for openai/gsm8k)')
    train_split: str = setting("train", "split of the training questions when train is a datasets id")
    test_split: str = setting("test", "split of the evaluation questions when test is a datasets id")
    few_shot: str = setting(
        "", 'few-shot prompt file: blocks "Q: ..." / "A: ..." separated by blank lines ("" = zero-shot)'
    )
    few_shot_hinted: str = setting("", 'hinted few-shot file for rationalization ("" = derived from few_shot)')
    few_shot_style: str = setting(
        "cot", "cot (worked rationales) | direct (few-shot answers only: the paper's baseline)"
    )
    question_field: str = setting("question", "jsonl task: the question's field (dotted for nested: question.stem)")
    answer_field: str = setting("answer", "jsonl task: the answer's field (dotted for nested)")
    id_field: str = setting("", 'jsonl task: the row id\'s field ("" = the row number)')
    answer_pattern: str = setting("", 'jsonl task: regex whose group 1 is the answer ("" = the task\'s default)')
    normalizer: str = setting("text", "jsonl task: how answers are compared: text | number | choice")
    max_examples: int = setting(0, "use only the first N rows of each split (0 = all)")
    max_new_tokens: int = setting(256, "generation budget for one rationale, in tokens")
    stop: list[str] = setting(
        factory=list,
        help="where a completion ends: it is cut before the first of these strings ([] = the task's own: the next"
        ' few-shot "Q:" block, and for gsm8k the "#### N" line); they also apply to chat models',
    )
    require_checked_step: bool = setting(
        False,
        "gsm8k with loop.filter=answer+rationale: a rationale with no calculator annotation that can be evaluated"
        " passes the step check (false: 18 of GSM8K's 1,319 gold test solutions have none, and instruct models"
        " rarely write them) or fails it (true: nothing unchecked is kept)",
    )

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

    train_steps: list[int] = setting(factory=lambda: [2, 3, 4, 5], help="operations per training problem")
    test_steps: list[int] = setting(factory=lambda: [2, 3, 4, 5], help="operations per test problem")
    train_per_step: int = setting(500, "training problems per step count")
    test_per_step: int = setting(100, "test problems per step count")
    max_number: int = setting(9, "numbers told in the stories are at most this")
    max_value: int = setting(30, "no quantity in a story (so no step's result) grows past this")
    few_shot_examples: int = setting(4, "solved 1-2 step problems in the prompt")
    check_every_step: bool = setting(
        True,
        "also require one calculation per step using every number of the story (GSM8K's step check alone keeps"
        " rationales that skip steps and land on the answer by coincidence)",
    )
    pretrain_steps: list[int] = setting(
        factory=lambda: [1, 2, 3],
        help="the embedded M0 (model.name_or_path=embedded) is pretrained on solved easy problems: their"
        " operations per problem",
    )
    pretrain_max_number: int = setting(9, "numbers told in M0's pretraining problems are at most this")
    pretrain_sloppy: float = setting(
        0.0,
        "share of M0's (unhinted) pretraining solutions of 3+ step problems that forget the story's last step and"
        " give the value before it as the answer, as sloppy worked solutions on the web do: M0 then often stops"
        " one step short, and STaR's filter is what teaches it to finish (0: every solution is right)",
    )
    vocab_size: int = setting(512, "M0's BPE tokenizer vocabulary, trained on its pretraining text")

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
    """The task: its questions, answers, grader and few-shot prompt."""

    name: str = setting(
        "arithmetic", "arithmetic | gsm8k | commonsenseqa | jsonl | word_problems | package.module:Class"
    )
    arithmetic: ArithmeticConfig = section(ArithmeticConfig, "n-digit addition (task.name=arithmetic)")
    word_problems: WordProblemsConfig = section(WordProblemsConfig, "generated word problems (word_problems)")
    data: DataConfig = section(DataConfig, "question/answer data (gsm8k, commonsenseqa, jsonl)")

    def __post_init__(self):
        require(isinstance(self.name, str) and self.name != "", "task.name must be a non-empty string")
