"""Property tests: every parser and extractor either answers or raises its own clear error, on any input."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from selftaught.config import ConfigError, DataConfig, load_config
from selftaught.tasks.base import Example, TaskDataError
from selftaught.tasks.commonsenseqa import CommonsenseQATask
from selftaught.tasks.data import read_rows, validate_rows
from selftaught.tasks.fewshot import parse_few_shot_text
from selftaught.tasks.gsm8k import GSM8KTask

FAST = settings(max_examples=150, deadline=None)


@given(st.text(max_size=500))
@FAST
def test_few_shot_parser_total(text):
    try:
        blocks = parse_few_shot_text(text, "f.txt")
    except TaskDataError as err:
        assert str(err).startswith("f.txt")
    else:
        assert all(b.line >= 1 for b in blocks)


@given(st.binary(max_size=400), st.sampled_from([".jsonl", ".csv", ".json"]))
@FAST
def test_row_readers_total_on_any_bytes(raw, suffix):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"data{suffix}"
        path.write_bytes(raw)
        report = validate_rows(read_rows(str(path)), lambda loc, row: Example(loc, "q", "a"))
        assert report["valid"] + report["invalid"] >= 0
        assert all(str(path) in line for line in report["problems"])


@given(st.text(max_size=60))
@FAST
def test_overrides_total(assignment):
    try:
        load_config(None, [assignment])
    except ConfigError as err:
        assert str(err)


@given(st.text(max_size=600))
@FAST
def test_task_graders_total(text):
    gsm = GSM8KTask.__new__(GSM8KTask)
    gsm.data = DataConfig(require_checked_step=True)
    example = Example("x", "q", "18", (("solution", "#### 18"),))
    answer = gsm.extract_answer(text)
    assert isinstance(gsm.check(answer, example), bool)
    assert gsm.verify_rationale(example, text) is None or isinstance(gsm.verify_rationale(example, text), str)
    csqa = CommonsenseQATask.__new__(CommonsenseQATask)
    choice = Example("y", "where?", "b", (("choices", (("a", "here"), ("b", "there"))),))
    assert isinstance(csqa.check(csqa.extract_answer(text), choice), bool)
    assert isinstance(csqa.check(csqa.extract_answer(text, choice), choice), bool)
