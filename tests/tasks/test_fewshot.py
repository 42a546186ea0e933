"""Few-shot files in the STaR release's format: parsing, rendering, and errors that name file and line."""

from __future__ import annotations

import pytest

from selftaught.tasks.base import Example, TaskDataError
from selftaught.tasks.fewshot import parse_few_shot_text, read_few_shot, read_few_shot_blocks, render_few_shot

GSM8K_STYLE = """Q: Natalia sold clips to 48 of her friends in April, and then half as many in May. How many in all?
A: Natalia sold 48/2 = <<48/2=24>>24 clips in May.
Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.
#### 72

Q: Betty has $100 and spends half. How much is left?
A: Betty has 100 / 2 = $<<100/2=50>>50 left.
#### 50
"""

CSQA_STYLE = """Q: What do people use to absorb extra ink from a fountain pen?
Answer Choices:
(a) shirt pocket
(b) calligrapher's hand
(c) inkwell
(d) desk drawer
(e) blotter
A: The answer must be used to absorb extra ink. Therefore, the answer is blotter (e).

Q: What home entertainment equipment requires cable?
Answer Choices:
(a) radio shack
(b) substation
(c) television
(d) cabinet
(e) desk
A: The answer must require cable. Therefore, the answer is television (c)."""


def write(tmp_path, text, name="prompts.txt"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_gsm8k_style_answers_span_lines(tmp_path):
    pairs = read_few_shot(write(tmp_path, GSM8K_STYLE))
    assert len(pairs) == 2
    question, answer = pairs[0]
    assert question.startswith("Natalia sold clips") and question.endswith("How many in all?")
    assert answer.startswith("Natalia sold 48/2") and answer.endswith("#### 72")
    assert answer.count("\n") == 2


def test_csqa_style_questions_span_lines(tmp_path):
    pairs = read_few_shot(write(tmp_path, CSQA_STYLE))
    assert len(pairs) == 2
    question, answer = pairs[1]
    assert question.split("\n")[1:3] == ["Answer Choices:", "(a) radio shack"]
    assert answer == "The answer must require cable. Therefore, the answer is television (c)."


@pytest.mark.parametrize("text", [GSM8K_STYLE, CSQA_STYLE])
def test_render_round_trips(tmp_path, text):
    assert render_few_shot(read_few_shot(write(tmp_path, text))) == text.strip()


def test_block_line_numbers_and_windows_line_endings(tmp_path):
    blocks = read_few_shot_blocks(write(tmp_path, "\n\n" + GSM8K_STYLE.replace("\n", "\r\n")))
    assert [b.line for b in blocks] == [3, 8]
    assert "\r" not in blocks[0].answer


def test_extra_blank_lines_between_blocks(tmp_path):
    text = GSM8K_STYLE.replace("\n\nQ:", "\n\n   \n\nQ:")
    assert len(read_few_shot(write(tmp_path, text))) == 2


@pytest.mark.parametrize(
    "text, where, message",
    [
        ("", ":1:", "empty file"),
        ("\n\n  \n", ":1:", "empty file"),
        ("Q: one?\nA: 1\n\nQ: two?\nno answer here\n", ":4:", "no 'A: ' line"),
        ("Q: one?\nA: 1\n\nHello\nA: 2\n", ":4:", "does not start with 'Q: '"),
        ("Q: one?\nA: 1\nQ: two?\nA: 2\n", ":3:", "separate blocks with a blank line"),
        ("Q:\nA: 1\n", ":1:", "empty question"),
        ("Q: one?\nA:\n", ":2:", "empty answer"),
    ],
)
def test_bad_files_name_file_and_line(tmp_path, text, where, message):
    path = write(tmp_path, text)
    with pytest.raises(TaskDataError) as err:
        read_few_shot(path)
    assert f"{path}{where}" in str(err.value) and message in str(err.value)


def test_non_utf8_names_the_line(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_bytes(b"Q: one?\nA: 1\n\nQ: caf\xe9?\nA: 2\n")
    with pytest.raises(TaskDataError, match=r"prompts.txt:4: not UTF-8"):
        read_few_shot(path)


def test_missing_file(tmp_path):
    with pytest.raises(TaskDataError, match="cannot read few-shot file"):
        read_few_shot(tmp_path / "absent.txt")


def test_parse_text_names_its_source():
    with pytest.raises(TaskDataError, match=r"^inline:1:"):
        parse_few_shot_text("A: no question", "inline")


def test_few_shot_direct_style_strips_rationales(tmp_path):
    from selftaught.config import DataConfig
    from selftaught.tasks.commonsenseqa import CommonsenseQATask
    from selftaught.tasks.gsm8k import GSM8KTask
    from selftaught.tasks.jsonl import JsonlTask

    gsm = tmp_path / "gsm.txt"
    gsm.write_text("Q: Mia has 2 dogs and gets 1 more. How many?\nA: She has 2+1 = <<2+1=3>>3 dogs.\n#### 3\n")
    csqa = tmp_path / "csqa.txt"
    csqa.write_text(
        "Q: Where do fish live?\nAnswer Choices:\n(a) water\n(b) sky\n"
        "A: Fish swim. Therefore, the answer is water (a).\n"
    )
    ex = Example("x", "Q?", "3")
    cot = GSM8KTask(DataConfig(few_shot=str(gsm))).prompt(ex)
    direct = GSM8KTask(DataConfig(few_shot=str(gsm), few_shot_style="direct")).prompt(ex)
    assert "<<2+1=3>>" in cot and "A: #### 3\n\nQ: Q?\nA:" in direct and "<<" not in direct
    c_ex = Example("y", "Q?", "a", (("choices", (("a", "x"), ("b", "y"))),))
    c_direct = CommonsenseQATask(DataConfig(few_shot=str(csqa), few_shot_style="direct")).prompt(c_ex)
    assert "A: The answer is water (a).\n" in c_direct and "Fish swim" not in c_direct
    j_direct = JsonlTask(DataConfig(few_shot=str(gsm), few_shot_style="direct", normalizer="number")).prompt(ex)
    assert "A: The answer is 3.\n" in j_direct
