"""Task registry: names map to factories that take the run config."""

from __future__ import annotations

import importlib

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


REGISTRY = {"arithmetic": _arithmetic, "gsm8k": _gsm8k, "commonsenseqa": _commonsenseqa, "jsonl": _jsonl}


def make_task(config: Config) -> Task:
    """Build the task named by ``task.name``: a registered name or ``package.module:Class``."""
    name = config.task.name
    if name in REGISTRY:
        return REGISTRY[name](config)
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as err:
            raise ConfigError(f"task.name {name!r} cannot be imported: {err}") from None
        task = factory(config)
        if not isinstance(task, Task):
            raise ConfigError(f"task.name {name!r} does not implement the Task protocol")
        return task
    raise ConfigError(f"unknown task.name {name!r}; registered: {sorted(REGISTRY)} (or package.module:Class)")


__all__ = ["Example", "Task", "TaskDataError", "make_task", "REGISTRY"]
