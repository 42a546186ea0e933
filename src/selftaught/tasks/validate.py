"""``selftaught data validate``: one entry point over the tasks' own validators."""

from __future__ import annotations

from selftaught.config import Config, ConfigError


def validate_dataset(config: Config, path: str) -> dict:
    """{'valid', 'invalid', 'problems', ...task-specific counts} for the dataset at ``path``."""
    name = config.task.name
    if name == "gsm8k":
        from selftaught.tasks.gsm8k import validate_gsm8k

        return validate_gsm8k(path)
    if name == "commonsenseqa":
        from selftaught.tasks.commonsenseqa import validate_commonsenseqa

        return validate_commonsenseqa(path)
    if name == "jsonl":
        from selftaught.tasks.jsonl import validate_jsonl

        return validate_jsonl(config.task.data, path)
    raise ConfigError(f"data validate knows gsm8k, commonsenseqa and jsonl, not {name!r}")
