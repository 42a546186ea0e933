"""Task registry: names map to factories that take the run config."""

from __future__ import annotations

import importlib

from selftaught.common.bounded import shown
from selftaught.config import Config, ConfigError
from selftaught.tasks.arithmetic import ArithmeticTask
from selftaught.tasks.base import Example, Task, TaskDataError


def _arithmetic(config: Config) -> ArithmeticTask:
    c = config.task.arithmetic
    return ArithmeticTask(c.train_digits, c.test_digits, c.train_per_digit, c.test_per_digit, c.format, config.seed)


def _gsm8k(config: Config) -> Task:
    from selftaught.tasks.gsm8k import GSM8KTask

    return GSM8KTask(config.task.data)


def _commonsenseqa(config: Config) -> Task:
    from selftaught.tasks.commonsenseqa import CommonsenseQATask

    return CommonsenseQATask(config.task.data)


def _jsonl(config: Config) -> Task:
    from selftaught.tasks.jsonl import JsonlTask

    return JsonlTask(config.task.data)


def _word_problems(config: Config) -> Task:
    from selftaught.tasks.word_problems import WordProblemSettings, WordProblemTask

    c = config.task.word_problems
    settings = WordProblemSettings(
        train_steps=c.train_steps,
        test_steps=c.test_steps,
        train_per_step=c.train_per_step,
        test_per_step=c.test_per_step,
        max_number=c.max_number,
        max_value=c.max_value,
        few_shot_examples=c.few_shot_examples,
        seed=config.seed,
        check_every_step=c.check_every_step,
    )
    return WordProblemTask(settings, config.task.data)


REGISTRY = {
    "arithmetic": _arithmetic,
    "gsm8k": _gsm8k,
    "commonsenseqa": _commonsenseqa,
    "jsonl": _jsonl,
    "word_problems": _word_problems,
}


TASK_METHODS = tuple(n for n in dir(Task) if not n.startswith("_") and callable(getattr(Task, n)))


def _import_task_class(name: str) -> type:
    """The class named ``package.module:Class``, if it implements every method of the Task protocol.

    A recipe is code: importing ``package.module`` runs its top-level code, as any import does. So only
    a module outside the standard library is imported (none of those holds a Task, and ``code``,
    ``pdb`` or ``antigravity`` do things on import or call), and only a class is accepted: ``os:system``
    or any other function is refused before it is called.
    """
    import inspect
    import sys

    module_name, _, attr = name.partition(":")
    top = module_name.split(".")[0]
    if not module_name or not attr or top in sys.stdlib_module_names or top in sys.builtin_module_names:
        raise ConfigError(
            f"task.name {shown(name)}: a custom task is package.module:Class from your own code, "
            "not the standard library"
        )
    try:
        found = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"task.name {shown(name)} cannot be imported: {err}") from None
    missing = [m for m in TASK_METHODS if not callable(getattr(found, m, None))]
    if not inspect.isclass(found) or missing:
        what = "is not a class" if not inspect.isclass(found) else f"lacks {', '.join(missing)}"
        raise ConfigError(f"task.name {shown(name)} {what}; it must be a class implementing selftaught.tasks.base.Task")
    return found


def make_task(config: Config) -> Task:
    """Build the task named by ``task.name``: a registered name or ``package.module:Class``."""
    name = config.task.name
    if name in REGISTRY:
        return REGISTRY[name](config)
    if ":" in name:
        cls = _import_task_class(name)
        try:
            task = cls(config)
        except TypeError as err:  # e.g. a constructor that does not take the run config
            raise ConfigError(f"task.name {shown(name)}: {cls.__name__}(config) failed: {err}") from None
        if not isinstance(task, Task):
            raise ConfigError(f"task.name {shown(name)} does not implement the Task protocol")
        return task
    raise ConfigError(f"unknown task.name {shown(name)}; registered: {sorted(REGISTRY)} (or package.module:Class)")


__all__ = ["Example", "Task", "TaskDataError", "make_task", "REGISTRY"]
