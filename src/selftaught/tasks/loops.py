"""Loops: a base model that repeats itself until its token budget runs out states no answer.

Gemma 3 270M under the few-shot prompt often writes the same line again and again ("She has 110 - 30 =
70 coins."), and SmolLM2 writes the same numbered step under a new list number each time ("19. 12 eggs
= 12 x 2 = 24 eggs", "20. 12 eggs = ..."). The last number of such a text is wherever the budget cut
the loop, not an answer. Both checks here are bounded: they look at most `LOOP_CONTEXT_CHARS` back.
"""

from __future__ import annotations

import re

LOOP_CONTEXT_CHARS = 40  # the last number with the text before it on its line (up to this much)...
MIN_LOOP_CHARS = 12  # ...at least this long, written before word for word: a loop, not an answer
SAME_LINES_FOR_LOOP = 3  # a line too short for that ("1") that ends this many equal lines in a row
# a leading list number: "20. ", "3) ", or "14." alone at the end of its line
_LIST_NUMBER_RE = re.compile(r"[ \t]*\d{1,3}[.)](?=[ \t\n]|$)")


def _line_start(text: str, at: int) -> int:
    return text.rfind("\n", 0, at) + 1


def _numbered(text: str, start: int) -> bool:
    """Whether the line starting at ``start`` opens with a list number."""
    return _LIST_NUMBER_RE.match(text, start) is not None


def is_list_number(text: str, at: int, end: int) -> bool:
    """Whether the number at ``text[at:end]`` is the list number opening its line, not a value: "3. Add
    them up." or a bare "14." under a numbered line (a list item the budget cut before its step).

    >>> is_list_number("1. 2 + 2 = 4\\n2. Add them up.", 13, 14)
    True
    >>> is_list_number("1. 2 + 2 = 4\\n14.", 13, 15), is_list_number("The total is:\\n14.", 14, 16)
    (True, False)
    """
    start = _line_start(text, at)
    marker = _LIST_NUMBER_RE.match(text, start)
    if marker is None or marker.end() != end + 1:
        return False
    line_end = text.find("\n", end)
    if text[end + 1 : len(text) if line_end < 0 else line_end].strip():
        return True  # "3. Add them up.": the number of the step
    above = text[:start].rstrip()  # a bare "14." is a list number only under a numbered line
    return bool(above) and _numbered(text, _line_start(text, len(above)))


def repeated(text: str, at: int, end: int) -> bool:
    """Whether the number at ``text[at:end]``, with the text before it, was written before ``at``, word for
    word: with its line (when at least `MIN_LOOP_CHARS` long, and without its leading list number, so
    "20. 12 eggs = 24" repeats "19. 12 eggs = 24") or with its last `LOOP_CONTEXT_CHARS` characters across
    lines (a line cut off by the budget).

    >>> repeated("19. 12 eggs = 12 x 2 = 24 eggs\\n20. 12 eggs = 12 x 2 = 24", 53, 55)
    True
    >>> repeated("1. 12 eggs = 12 x 2 = 24 eggs\\n2. 24 eggs = 12 x 2 = 48", 52, 54)
    False
    """
    window_start = max(0, end - LOOP_CONTEXT_CHARS)
    newline = text.rfind("\n", window_start, end)
    line_at = newline + 1 if newline >= 0 else window_start
    if newline >= 0 or window_start == 0:  # the line's start is in the window: skip its list number
        marker = _LIST_NUMBER_RE.match(text, line_at, at)
        line_at = marker.end() if marker else line_at
    for start in {line_at, window_start}:
        context = text[start:end]
        if len(context.strip()) >= MIN_LOOP_CHARS and text.find(context, 0, at) >= 0:
            return True
    return _same_lines(text, at, end)


def _same_lines(text: str, at: int, end: int) -> bool:
    """Whether the number at ``text[at:end]`` ends its line and that line is the last of
    `SAME_LINES_FOR_LOOP` equal lines in a row: Gemma's "3/2 = <<3/2=1>>1" followed by "1" lines until
    the budget ran out, too short for the word-for-word check.

    >>> _same_lines("4-2 = 2\\n2\\n2\\n2", 14, 15), _same_lines("4-2 = 2\\n2\\n2", 12, 13)
    (True, False)
    """
    line_end = text.find("\n", end)
    start = _line_start(text, at)
    line = text[start : len(text) if line_end < 0 else line_end].strip()
    for _ in range(SAME_LINES_FOR_LOOP - 1):
        if start == 0:
            return False
        above = _line_start(text, start - 1)
        if text[above : start - 1].strip() != line:
            return False
        start = above
    return bool(line)
