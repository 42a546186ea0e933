"""Field help as data: each config field carries its help text in ``metadata["help"]`` (as in TRL and
litgpt), so ``selftaught config`` and the tests read it instead of comments."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


def setting(default: Any = dataclasses.MISSING, help: str = "", *, factory: Callable[[], Any] | None = None):
    """A documented field: ``setting(5, "outer STaR iterations")``; mutable defaults by ``factory=``."""
    if factory is not None:
        return field(default_factory=factory, metadata={"help": help})
    return field(default=default, metadata={"help": help})


def section(cls: type, help: str):
    """A nested section (a dataclass of settings), built with its own defaults."""
    return field(default_factory=cls, metadata={"help": help})


@dataclass(frozen=True)
class FieldHelp:
    """One leaf setting: its dotted key (``train.learning_rate``), type, default value and help text."""

    key: str
    type: str
    default: Any
    help: str

    @property
    def shown_default(self) -> str:
        """The default as it is written in a recipe: ``true``, ``""``, ``[1, 2]``, ``0.0005``."""
        return yaml_text(self.default)


def yaml_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if value.strip() == value and value else repr(value).replace("'", '"')
    if isinstance(value, list):
        return "[" + ", ".join(yaml_text(item) for item in value) + "]"
    return str(value)


def describe_fields(root: type | None = None) -> list[FieldHelp]:
    """Every leaf field of ``root`` (default: `Config`), depth first in declaration order."""
    if root is None:
        from selftaught.config.sections import Config

        root = Config
    return list(_leaves(root, ""))


def _leaves(cls: type, prefix: str):
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            yield from _leaves(hint, f"{prefix}{f.name}.")
            continue
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        yield FieldHelp(f"{prefix}{f.name}", _type_name(hint), default, f.metadata.get("help", ""))


def _type_name(hint) -> str:
    if typing.get_origin(hint) is not None:
        return str(hint)  # list[int]
    return getattr(hint, "__name__", str(hint))
