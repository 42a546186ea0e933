"""Bounds on untrusted text: YAML that cannot explode, error messages that cannot echo megabytes.

A recipe, an override and a saved ``config.yaml`` are all read through `load_yaml`; every message
that quotes a user's value goes through `shown`.
"""

from __future__ import annotations

import yaml

MAX_YAML_DEPTH = 32  # the config is 4 levels deep; PyYAML's composer recurses and crashes near 1,000
MAX_YAML_NODES = 100_000  # counted with aliases expanded: nine nested lists of ten aliases are 10^9 values


class TooLarge(ValueError):
    """YAML beyond the bounds; the message names where (and the line)."""


def shown(value, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, so an error never echoes a huge value.

    >>> shown("x" * 100, 12)
    "'xxxxxxxx… (102 characters)"
    >>> shown([1, 2])
    '[1, 2]'
    """
    if isinstance(value, (list, dict)) and not _small(value):
        return f"<{type(value).__name__} of {len(value):,} items, too large to show>"
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}… ({len(text):,} characters)"


def _small(value, budget: int = 200) -> bool:
    """True if ``value`` holds at most ``budget`` items in all (aliases make a repr explode otherwise)."""
    stack, seen = [value], 0
    while stack:
        item = stack.pop()
        seen += 1
        if seen > budget:
            return False
        if isinstance(item, dict):
            stack += list(item.values())
        elif isinstance(item, list):
            stack += item
    return True


def printable(text: str) -> str:
    """``text`` with undecodable bytes (surrogate escapes from argv or file names) shown as ``\\xff``.

    >>> printable("runs/\\udcff")
    'runs/\\\\xff'
    """
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def load_yaml(text: str, where: str):
    """``yaml.safe_load`` within bounds: nesting depth, and node count with aliases expanded.

    The bounds are checked on PyYAML's event stream (iterative, no objects built), so neither a deeply
    nested value nor an alias bomb costs memory or a RecursionError before it is refused.
    """
    anchors: dict[str, int] = {}  # expanded size of each anchored node
    stack: list[list] = [[None, 0]]  # [anchor, expanded size] of each open collection (root first)
    total = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        line = event.start_mark.line + 1 if event.start_mark else 0
        if isinstance(event, yaml.CollectionStartEvent):
            stack.append([event.anchor, 1])
            if len(stack) - 1 > MAX_YAML_DEPTH:
                raise TooLarge(f"{where}:{line}: nested deeper than {MAX_YAML_DEPTH} levels")
            total += 1
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, size = stack.pop()
            if anchor:
                anchors[anchor] = size
            stack[-1][1] += size
        elif isinstance(event, (yaml.ScalarEvent, yaml.AliasEvent)):
            if isinstance(event, yaml.AliasEvent) and event.anchor not in anchors:
                raise TooLarge(f"{where}:{line}: alias {shown(event.anchor)} refers to itself")
            size = anchors[event.anchor] if isinstance(event, yaml.AliasEvent) else 1
            if isinstance(event, yaml.ScalarEvent) and event.anchor:
                anchors[event.anchor] = 1
            stack[-1][1] += size
            total += size
        if total > MAX_YAML_NODES:
            raise TooLarge(f"{where}: more than {MAX_YAML_NODES:,} values once aliases are expanded")
    return yaml.safe_load(text)
