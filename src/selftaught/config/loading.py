"""Recipes and overrides into a `Config`: unknown keys rejected with the closest name, types coerced."""

from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from selftaught.common.bounded import TooLarge, load_yaml, printable, shown
from selftaught.config.checks import MAX_RECIPE_BYTES, ConfigError, finite, require
from selftaught.config.sections import Config


def _build(cls, data: Any, path: str):
    """Construct dataclass ``cls`` from a mapping, rejecting unknown keys and wrong types."""
    if not isinstance(data, dict):
        raise ConfigError(f"{path or 'config'} must be a mapping, got {type(data).__name__}")
    hints = get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        where = f"{path}.{key}" if path else str(key)
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1) if len(str(key)) <= 100 else []
            hint = f"; did you mean '{close[0]}'?" if close else f"; valid keys: {', '.join(names)}"
            raise ConfigError(f"unknown config key {shown(where)}{hint}")
        kwargs[key] = _coerce(hints[key], value, where)
    return cls(**kwargs)


def _coerce(hint, value, where: str):
    if dataclasses.is_dataclass(hint):
        return _build(hint, value if value is not None else {}, where)
    if hint is float and isinstance(value, str):
        value = _yaml_float(value)  # YAML 1.1 reads 5e-4 (no dot) as text
    expected = {int: int, float: (int, float), str: str, bool: bool}
    if hint in expected:
        ok = isinstance(value, expected[hint]) and not (hint in (int, float) and isinstance(value, bool))
        require(ok, f"{where} must be {hint.__name__}, got {shown(value)}")
        if hint is float:
            require(finite(value), f"{where} must be a finite number, got {shown(value)}")
            return float(value)
        return value
    if getattr(hint, "__origin__", None) is list:
        require(isinstance(value, list), f"{where} must be a list, got {shown(value)}")
    return value


def _yaml_float(text: str):
    """``float(text)`` for plain numbers such as ``5e-4``; ``text`` itself otherwise (refused by the caller)."""
    try:
        return float(text) if len(text) <= 40 and text.strip().lower() not in ("nan", "inf", "infinity") else text
    except ValueError:
        return text


def apply_override(data: dict, assignment: str) -> None:
    """Apply ``a.b.c=value`` to a nested dict (value parsed as YAML)."""
    key, sep, raw = assignment.partition("=")
    require(bool(sep) and key.strip() != "", f"override {shown(assignment)} must look like section.field=value")
    try:
        value = load_yaml(raw, f"override {shown(assignment)}") if raw.strip() else ""
    except TooLarge as err:
        raise ConfigError(str(err)) from None
    except yaml.YAMLError as err:
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"override {shown(assignment)}: value is not valid YAML ({problem})") from None
    node = data
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        require(isinstance(node, dict), f"override {shown(assignment)}: {shown(part)} is not a section")
    node[parts[-1]] = value


def read_yaml_file(path: str | Path, label: str) -> dict:
    """The mapping in a YAML file; every problem is one ConfigError naming ``label`` and the line."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_RECIPE_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{label} does not exist") from None
    except OSError as err:
        raise ConfigError(f"{label} cannot be read: {err.strerror or err}") from None
    require(len(raw) <= MAX_RECIPE_BYTES, f"{label} is larger than {MAX_RECIPE_BYTES // 1024} KiB; not a recipe")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise ConfigError(f"{label}:{line} is not UTF-8 (byte {err.start})") from None
    try:
        data = load_yaml(text, label)
    except TooLarge as err:
        raise ConfigError(str(err)) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{label}{line} is not valid YAML: {problem}") from None
    if data is None:
        return {}
    require(isinstance(data, dict), f"{label} must be a YAML mapping at the top level")
    return data


def read_recipe(path: str | Path) -> dict:
    """A recipe's mapping (bounded: size, nesting, aliases; see `load_yaml`)."""
    return read_yaml_file(path, f"recipe {printable(str(path))}")


def load_config(recipe: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    data = read_recipe(recipe) if recipe else {}
    for assignment in overrides or []:
        apply_override(data, assignment)
    return config_from_dict(data)


def config_from_dict(data: dict) -> Config:
    try:
        return _build(Config, data, "")
    except TypeError as err:  # e.g. a section given as a scalar
        raise ConfigError(str(err)) from None
