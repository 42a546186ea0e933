"""Where a completion ends.

A pretrained base model under a few-shot ``Q: ... / A: ...`` prompt does not stop after its answer: it
writes the next ``Q:`` block, and the next, until its token budget runs out. Kept as is, that text
would teach STaR's fine-tuned model to babble, and most generated tokens would be waste. So each task
says where its completions end (`Task.stop`), every generation backend stops there, and the stored
text is cut there; training then appends the end-of-sequence token, so the fine-tuned model learns to
stop by itself.

A `Stop` has two parts, both optional:

* ``strings``: the completion ends *before* the first of these (``"\\nQ:"``: the next few-shot block);
* ``end_pattern``: a regex; the completion ends *right after* its first match, once that match is
  finished, i.e. more text follows it (``####[^\\n]*``: the line holding GSM8K's final answer).

Chat models end their turn with an end-of-turn token; a task's few-shot stops do not apply to them
unless ``in_chat`` (set for stops the user wrote in ``task.data.stop``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

FEW_SHOT_STOPS = ("\nQ:",)  # the next block of the STaR few-shot format


@dataclass(frozen=True)
class Stop:
    strings: tuple[str, ...] = ()
    end_pattern: str = ""
    in_chat: bool = False

    @cached_property
    def _pattern(self) -> re.Pattern | None:
        return re.compile(self.end_pattern) if self.end_pattern else None

    @property
    def empty(self) -> bool:
        return not self.strings and not self.end_pattern

    def find_end(self, text: str, final: bool = False) -> int | None:
        """Where ``text`` ends as a completion, or None when it has not ended yet.

        While generating (``final=False``) an ``end_pattern`` match that reaches the end of ``text``
        may still grow ("#### 1" before "8"), so it counts only once more text follows it.

        >>> Stop(("\\nQ:",)).find_end(" 3+4=7.\\n#### 7\\n\\nQ: next")
        15
        >>> gsm = Stop(end_pattern=r"####[^\\n]*")
        >>> gsm.find_end("so 18.\\n#### 1") is None, gsm.find_end("so 18.\\n#### 18\\n")
        (True, 14)
        >>> gsm.find_end("so 18.\\n#### 18", final=True)
        14
        """
        ends = [at for at in (text.find(s) for s in self.strings) if at >= 0]
        if self._pattern is not None:
            match = self._pattern.search(text)
            if match and (final or match.end() < len(text)):
                ends.append(match.end())
        return min(ends) if ends else None

    def cut(self, text: str) -> str:
        """``text`` up to its end (trailing whitespace dropped); unchanged when it has no end.

        >>> Stop(("\\nQ:",), r"####[^\\n]*").cut(" 2*6 = <<2*6=12>>12\\n#### 12\\n\\nQ: A cat has")
        ' 2*6 = <<2*6=12>>12\\n#### 12'
        >>> Stop().cut("unchanged\\n")
        'unchanged\\n'
        """
        end = self.find_end(text, final=True)
        return text if end is None else text[:end].rstrip()

    def for_chat(self, chat: bool) -> Stop:
        """The stop that applies to a model with (``chat``) or without a chat template."""
        return self if not chat or self.in_chat else NO_STOP


NO_STOP = Stop()


def few_shot_stop(user_strings: list[str] | tuple[str, ...], end_pattern: str = "", defaults=FEW_SHOT_STOPS) -> Stop:
    """A task's stop: the user's ``task.data.stop`` strings when given (they apply to chat models too),
    else the task's few-shot ``defaults``; ``end_pattern`` either way."""
    if user_strings:
        return Stop(tuple(user_strings), end_pattern, in_chat=True)
    return Stop(tuple(defaults), end_pattern)
