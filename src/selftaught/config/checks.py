"""The checks every config field goes through; each failure is one `ConfigError` naming the field."""

from __future__ import annotations

import dataclasses
import math
from typing import get_type_hints

from selftaught.common.bounded import printable, shown


class ConfigError(ValueError):
    """A configuration the run cannot use; the message names the field."""


MAX_RECIPE_BYTES = 1 << 20  # a recipe is a few hundred bytes; anything this big is a mistake
MAX_TEXT_CHARS = 4096  # longest text field (paths, regexes): PATH_MAX
MAX_INT = 2**63 - 1  # torch seeds and step counts are int64
MAX_STEPS = 10**9  # optimizer steps in one iteration


def require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def choice(section: str, name: str, value, choices) -> None:
    where = f"{section}.{name}" if section else name
    require(value in choices, f"{where} must be one of {list(choices)}, got {shown(value)}")


def check_numbers(section, path: str) -> None:
    """Every float field finite, every int field an int64, every text field UTF-8 and bounded.

    Checked on the whole `Config`, so a config built in Python (``TrainConfig(learning_rate=1e400)``)
    is held to the same rules as one read from YAML.
    """
    hints = get_type_hints(type(section))
    for f in dataclasses.fields(section):
        value, where = getattr(section, f.name), f"{path}{f.name}"
        if dataclasses.is_dataclass(value):
            check_numbers(value, where + ".")
        elif hints[f.name] is float:
            require(finite(value), f"{where} must be a finite number, got {shown(value)}")
        elif hints[f.name] is int:
            require(
                isinstance(value, int) and not isinstance(value, bool) and abs(value) <= MAX_INT,
                f"{where} must be an integer within ±2^63, got {shown(value)}",
            )
        elif hints[f.name] is str:
            check_text(value, where)


def finite(value) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return abs(value) <= MAX_INT if isinstance(value, int) else math.isfinite(value)


def check_text(value, where: str) -> None:
    require(isinstance(value, str), f"{where} must be str, got {shown(value)}")
    require(len(value) <= MAX_TEXT_CHARS, f"{where} is {len(value):,} characters (limit {MAX_TEXT_CHARS:,})")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(f"{where} is not valid UTF-8: {shown(printable(value))}") from None


# experiment trackers (``report_to``): the names are config; the sinks live in reporting.tracking
TRACKERS = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow", "trackio": "trackio"}


def parse_report_to(value: str) -> list[str]:
    """Tracker names from the ``report_to`` setting.

    >>> parse_report_to("none"), parse_report_to("tensorboard, wandb")
    ([], ['tensorboard', 'wandb'])
    """
    names = [part.strip() for part in str(value).split(",") if part.strip()]
    return [] if names in ([], ["none"]) else names
