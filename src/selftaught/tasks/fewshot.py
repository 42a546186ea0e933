"""Few-shot files in the STaR release's format, and the prompt prefix built from them.

Blocks are separated by blank lines; each starts with ``Q: `` and has one ``A: `` line. The
question may span lines (CommonsenseQA's ``Answer Choices:`` and ``(a) ...``), and so may the
answer (GSM8K's steps and ``#### N``)::

    Q: What do people use to absorb extra ink from a fountain pen?
    Answer Choices:
    (a) shirt pocket
    ...
    A: ... Therefore, the answer is blotter (e).

    Q: ...
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from selftaught.config import DataConfig
from selftaught.tasks.base import TaskDataError


@dataclass(frozen=True)
class Block:
    question: str
    answer: str
    line: int  # 1-based line of the block's "Q: " in its file, for error messages


def _split_blocks(text: str) -> list[tuple[int, list[str]]]:
    """(first line number, lines) of each run of non-blank lines."""
    blocks, current, start = [], [], 0
    for lineno, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            if not current:
                start = lineno
            current.append(line.rstrip())
        elif current:
            blocks.append((start, current))
            current = []
    if current:
        blocks.append((start, current))
    return blocks


def _parse_block(source: str, start: int, lines: list[str]) -> Block:
    if not lines[0].startswith("Q:"):
        raise TaskDataError(f"{source}:{start}: block does not start with 'Q: ' (got {lines[0][:40]!r})")
    answer_at = next((k for k, line in enumerate(lines) if line.startswith("A:")), None)
    if answer_at is None:
        raise TaskDataError(f"{source}:{start}: block has no 'A: ' line")
    for k in range(answer_at + 1, len(lines)):
        if lines[k].startswith("Q:"):  # two blocks with no blank line between them
            raise TaskDataError(f"{source}:{start + k}: 'Q: ' inside an answer; separate blocks with a blank line")
    question = "\n".join([lines[0][2:].strip(), *lines[1:answer_at]]).strip()
    answer = "\n".join([lines[answer_at][2:].strip(), *lines[answer_at + 1 :]]).strip()
    if not question:
        raise TaskDataError(f"{source}:{start}: empty question")
    if not answer:
        raise TaskDataError(f"{source}:{start + answer_at}: empty answer")
    return Block(question, answer, start)


def parse_few_shot_text(text: str, source: str = "<few-shot>") -> list[Block]:
    """Blocks of a few-shot text; ``source`` names it in errors."""
    text = text.replace("\r\n", "\n")
    blocks = [_parse_block(source, start, lines) for start, lines in _split_blocks(text)]
    if not blocks:
        raise TaskDataError(f"{source}:1: no 'Q: ... A: ...' blocks (empty file?)")
    return blocks


def read_few_shot_blocks(path: str | Path) -> list[Block]:
    """Blocks of a few-shot file, with their line numbers."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise TaskDataError(f"{path}: cannot read few-shot file ({err.strerror or err})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise TaskDataError(f"{path}:{line}: not UTF-8 (byte {err.start})") from None
    return parse_few_shot_text(text, str(path))


def read_few_shot(path: str | Path) -> list[tuple[str, str]]:
    """(question, answer) pairs of a few-shot file."""
    return [(block.question, block.answer) for block in read_few_shot_blocks(path)]


def render_few_shot(pairs) -> str:
    """``Q: ...\\nA: ...`` blocks joined by a blank line (no trailing newline).

    >>> print(render_few_shot([("1+1?", "2"), ("2+2?", "4")]))
    Q: 1+1?
    A: 2
    <BLANKLINE>
    Q: 2+2?
    A: 4
    """
    return "\n\n".join(f"Q: {question}\nA: {answer}" for question, answer in pairs)


def with_question(prefix: str, question_block: str) -> str:
    """The prompt: few-shot prefix (if any), a blank line, then ``Q: ...\\nA:``."""
    return f"{prefix}\n\n{question_block}" if prefix else question_block


def few_shot_prefixes(
    data: DataConfig,
    hint_block: Callable[[Block, str], tuple[str, str]],
    direct_answer: Callable[[Block, str], str] | None = None,
) -> tuple[str, str]:
    """(plain, hinted) prefixes; the hinted one is derived with ``hint_block`` when no hinted file is given.

    ``hint_block(block, source)`` returns the block's hinted (question, answer). With
    ``few_shot_style=direct``, ``direct_answer(block, source)`` replaces each worked answer by the
    bare answer (the paper's few-shot direct baseline).
    """
    plain_blocks = read_few_shot_blocks(data.few_shot) if data.few_shot else []
    if data.few_shot_style == "direct" and direct_answer is not None:
        plain_blocks = [Block(b.question, direct_answer(b, data.few_shot), b.line) for b in plain_blocks]
    plain = render_few_shot((b.question, b.answer) for b in plain_blocks)
    if data.few_shot_hinted:
        return plain, render_few_shot(read_few_shot(data.few_shot_hinted))
    return plain, render_few_shot(hint_block(b, data.few_shot) for b in plain_blocks)
