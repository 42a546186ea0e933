"""Embedded word problems in GSM8K's format (``task.name=word_problems``): a task where rationales matter.

Each problem is a chain of ``steps`` operations on one quantity, told as a short story; its solution
has one line per step with a calculator annotation, then ``#### N``, exactly as GSM8K's::

    Q: Ann has 12 shells. Ann finds 7 more shells. Ann gives 4 shells away. How many shells does Ann have now?
    A: 12+7 = <<12+7=19>>19
    19-4 = <<19-4=15>>15
    #### 15

Grading is the GSM8K task's own: answer extraction, numeric check, and the step check of every
annotation. A problem's answer needs every step, so answering directly means doing the whole chain
at once, while a rationale does one small operation per line.

GSM8K's step check passes a rationale that skips steps: three right lines whose result happens to
equal a 5-step problem's answer. With small numbers that happens often, and such rationales teach the
model to stop early (all 4-5 step rationales kept in benchmarks/results/paper_table_v1.json were of this
kind). ``check_every_step`` (on by default) also requires one calculation per step, using every
number the story tells; a rationale that does the steps in another order is then a miss, never a
false accept.

Problems are generated from a seed, so train, test and the few-shot examples never share a question.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass

from selftaught.config import DataConfig
from selftaught.tasks.answers import iter_annotations
from selftaught.tasks.base import EMBEDDED_TEXT, Example
from selftaught.tasks.fewshot import render_few_shot
from selftaught.tasks.gsm8k import GSM8KTask

NAMES = ("Ann", "Ben", "Cal", "Dee", "Eli", "Fay", "Gus", "Hal", "Ida", "Jo", "Kim", "Lou")
ITEMS = ("apples", "books", "cards", "coins", "eggs", "marbles", "pens", "shells", "stamps", "toys")


@dataclass(frozen=True)
class Problem:
    question: str
    solution: str  # one annotated line per step, then "#### N"
    answer: str
    steps: int


def make_problem(rng: random.Random, steps: int, max_number: int, max_value: int = 99) -> Problem:
    """A chain of ``steps`` operations (add, take away, multiply, share) on numbers up to ``max_number``;
    no quantity in the story grows past ``max_value``.

    >>> p = make_problem(random.Random(0), 2, 20)
    >>> p.steps, p.solution.count("<<"), p.solution.endswith("#### " + p.answer)
    (2, 2, True)
    """
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    value = rng.randint(2, max_number)
    story, lines = [f"{name} has {value} {item}."], []
    for _ in range(steps):
        op = rng.choice([op for op in OPERATIONS if op.possible(value, max_value)])
        operand = op.operand(rng, value, max_number, max_value)
        result = op.apply(value, operand)
        story.append(op.sentence.format(name=name, item=item, n=operand))
        lines.append(f"{value}{op.symbol}{operand} = <<{value}{op.symbol}{operand}={result}>>{result}")
        value = result
    story.append(f"How many {item} does {name} have now?")
    return Problem(" ".join(story), "\n".join(lines) + f"\n#### {value}", str(value), steps)


@dataclass(frozen=True)
class Operation:
    symbol: str
    sentence: str  # one step of the story; {name}, {item}, {n}

    def possible(self, value: int, max_value: int) -> bool:
        if self.symbol == "+":
            return value + 2 <= max_value
        if self.symbol == "-":
            return value >= 3
        if self.symbol == "*":
            return value * 2 <= max_value
        return any(value % k == 0 for k in (2, 3, 4, 5))

    def operand(self, rng: random.Random, value: int, max_number: int, max_value: int) -> int:
        if self.symbol == "+":
            return rng.randint(2, min(max_number, max_value - value))
        if self.symbol == "-":
            return rng.randint(1, min(max_number, value - 1))
        if self.symbol == "*":
            return rng.randint(2, max(2, min(5, max_value // value)))
        return rng.choice([k for k in (2, 3, 4, 5) if value % k == 0])

    def apply(self, value: int, operand: int) -> int:
        return {"+": value + operand, "-": value - operand, "*": value * operand, "/": value // operand}[self.symbol]


OPERATIONS = (
    Operation("+", "{name} finds {n} more {item}."),
    Operation("-", "{name} gives {n} {item} away."),
    Operation("*", "Then {name} has {n} times as many {item}."),
    Operation("/", "{name} splits the {item} into {n} equal piles and keeps one pile."),
)


def make_examples(
    seed: str, steps: list[int], per_step: int, max_number: int, max_value: int, prefix: str
) -> list[Example]:
    """``per_step`` problems for each step count, ids ``{prefix}-{steps}s-{k}``; none repeats a question."""
    rng, seen, examples = random.Random(seed), set(), []
    for n in steps:
        k = 0
        while k < per_step:
            problem = make_problem(rng, n, max_number, max_value)
            if problem.question in seen:
                continue
            seen.add(problem.question)
            meta = (("solution", problem.solution), ("steps", n))
            examples.append(Example(f"{prefix}-{n}s-{k:05d}", problem.question, problem.answer, meta))
            k += 1
    return examples


@dataclass
class WordProblemSettings:
    """What `WordProblemTask` generates (the recipe's ``task.word_problems`` section)."""

    train_steps: list[int]
    test_steps: list[int]
    train_per_step: int
    test_per_step: int
    max_number: int
    max_value: int = 99
    few_shot_examples: int = 4
    seed: int = 0
    check_every_step: bool = True


class WordProblemTask(GSM8KTask):
    """GSM8K's prompts and grading on generated problems (no files)."""

    name = "word_problems"
    embedded_base = EMBEDDED_TEXT  # the small text model pretrained on generated problems

    def __init__(self, settings: WordProblemSettings, data: DataConfig | None = None):
        self.settings, self.data = settings, data or DataConfig()
        s = settings
        # as in GSM8K's prompt: short solved problems (1-2 steps) that show the format, not the hard cases
        shots = [
            ex
            for k in range(s.few_shot_examples)
            for ex in make_examples(f"fewshot-{s.seed}-{k}", [1 + k % 2], 1, s.max_number, s.max_value, "shot")
        ]
        solutions = [dict(ex.meta)["solution"] for ex in shots]
        self._prefix = render_few_shot((ex.question, sol) for ex, sol in zip(shots, solutions))
        self._hinted_prefix = render_few_shot(
            (f"{ex.question} ({ex.answer})", sol) for ex, sol in zip(shots, solutions)
        )
        self._shots = {ex.question for ex in shots}

    def load(self, split: str) -> list[Example]:
        """Test problems, or training problems that are neither a test problem nor a few-shot example."""
        s = self.settings
        test = make_examples(f"test-{s.seed}", s.test_steps, s.test_per_step, s.max_number, s.max_value, "test")
        test = [ex for ex in test if ex.question not in self._shots]
        if split != "train":
            return test
        taken = self._shots | {ex.question for ex in test}
        train = make_examples(f"train-{s.seed}", s.train_steps, s.train_per_step, s.max_number, s.max_value, "train")
        return [ex for ex in train if ex.question not in taken]

    def verify_rationale(self, example: Example, completion: str) -> str | None:
        """GSM8K's step check, then (``check_every_step``) one calculation per step using every told number.

        >>> task = WordProblemTask(WordProblemSettings([2], [2], 1, 1, 9))
        >>> ex = Example("x", "Ann has 5 pens. Ann finds 3 more pens. Ann gives 2 pens away. How many?", "6",
        ...              (("steps", 2),))
        >>> task.verify_rationale(ex, "5+3 = <<5+3=8>>8\\n8-2 = <<8-2=6>>6\\n#### 6") is None
        True
        >>> task.verify_rationale(ex, "5+3 = <<5+3=8>>8\\n#### 6")
        '1 calculation(s) for a 2-step problem'
        >>> task.verify_rationale(ex, "5+3 = <<5+3=8>>8\\n8-3 = <<8-3=5>>5\\n#### 5")
        'does not use 2 from the question'
        """
        problem = super().verify_rationale(example, completion)
        if problem is not None or not self.settings.check_every_step:
            return problem
        calculations = [body.partition("=")[0] for body in iter_annotations(completion)]
        steps = int(dict(example.meta)["steps"])
        if len(calculations) != steps:
            return f"{len(calculations)} calculation(s) for a {steps}-step problem"
        missing = Counter(re.findall(r"\d+", example.question)) - Counter(re.findall(r"\d+", " ".join(calculations)))
        if missing:
            return f"does not use {', '.join(sorted(missing))} from the question"
        return None

    def bucket(self, example: Example) -> str:
        return str(dict(example.meta)["steps"])

    def max_new_tokens(self, example: Example) -> int:
        return 20 * int(dict(example.meta)["steps"]) + 16  # a line per step is ~17 tokens (digits split), then #### N


__all__ = ["WordProblemTask", "WordProblemSettings", "make_problem", "make_examples"]
