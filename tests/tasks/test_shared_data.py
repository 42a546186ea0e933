"""Checks against the real GSM8K / CommonsenseQA files in ../shared/data; skipped where they are absent."""

from __future__ import annotations

from pathlib import Path

import pytest

from selftaught.config import DataConfig
from selftaught.tasks.answers import check_annotations, extract_gsm8k_answer
from selftaught.tasks.choices import extract_choice
from selftaught.tasks.commonsenseqa import CommonsenseQATask, validate_commonsenseqa
from selftaught.tasks.fewshot import read_few_shot, render_few_shot
from selftaught.tasks.gsm8k import GSM8KTask, gold_answer, validate_gsm8k

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
GSM8K, CSQA = DATA / "gsm8k", DATA / "commonsenseqa"

needs_gsm8k = pytest.mark.skipif(not (GSM8K / "test.jsonl").exists(), reason="shared GSM8K data absent")
needs_csqa = pytest.mark.skipif(not (CSQA / "dev_rand_split.jsonl").exists(), reason="shared CommonsenseQA absent")


@needs_gsm8k
def test_gsm8k_test_file():
    report = validate_gsm8k(str(GSM8K / "test.jsonl"))
    assert report["valid"] == 1319 and report["invalid"] == 0
    assert report["gold_answer_mismatch"] == 0
    assert report["annotations"] == 4282
    assert report["annotations"] - report["annotations_failed"] >= 0.999 * report["annotations"]


@needs_gsm8k
def test_gsm8k_few_shot_files():
    plain = read_few_shot(GSM8K / "prompts.txt")
    hinted = read_few_shot(GSM8K / "prompts_answer_key.txt")
    assert len(plain) == len(hinted) == 6
    for path in ("prompts.txt", "prompts_answer_key.txt"):
        text = (GSM8K / path).read_text(encoding="utf-8")
        assert render_few_shot(read_few_shot(GSM8K / path)) == text.strip()
    for _, answer in plain:  # the shots' own steps and answers pass our checks
        assert extract_gsm8k_answer(answer) == gold_answer(answer)
        steps = check_annotations(answer)
        assert steps.checked > 0 and steps.problems == ()


@needs_gsm8k
def test_gsm8k_derived_hint_equals_shipped():
    base = dict(test=str(GSM8K / "test.jsonl"), few_shot=str(GSM8K / "prompts.txt"), max_examples=3)
    derived = GSM8KTask(DataConfig(**base))
    shipped = GSM8KTask(DataConfig(**base, few_shot_hinted=str(GSM8K / "prompts_answer_key.txt")))
    for example in derived.load("test"):
        assert derived.prompt(example, hint=True) == shipped.prompt(example, hint=True)
        assert derived.prompt(example).startswith((GSM8K / "prompts.txt").read_text().strip() + "\n\nQ: ")


@needs_csqa
def test_commonsenseqa_dev_file():
    report = validate_commonsenseqa(str(CSQA / "dev_rand_split.jsonl"))
    assert report["valid"] == 1221 and report["invalid"] == 0
    assert report["rows_by_choices"] == {"5": 1221}


@needs_csqa
def test_commonsenseqa_few_shot_files():
    plain = read_few_shot(CSQA / "prompts.txt")
    hinted = read_few_shot(CSQA / "prompts_answer_key.txt")
    assert len(plain) == len(hinted) == 7
    for (question, answer), (hinted_question, _) in zip(plain, hinted):
        choices = [(line[1], line[4:]) for line in question.split("\n") if line.startswith("(")]
        marked = next(line for line in hinted_question.split("\n") if line.endswith(" (CORRECT)"))
        assert extract_choice(answer, choices) == marked[1]


@needs_csqa
def test_commonsenseqa_derived_hint_equals_shipped():
    base = dict(test=str(CSQA / "dev_rand_split.jsonl"), few_shot=str(CSQA / "prompts.txt"), max_examples=3)
    derived = CommonsenseQATask(DataConfig(**base))
    shipped = CommonsenseQATask(DataConfig(**base, few_shot_hinted=str(CSQA / "prompts_answer_key.txt")))
    for example in derived.load("test"):
        assert derived.prompt(example, hint=True) == shipped.prompt(example, hint=True)
        assert derived.prompt(example, hint=True).count(" (CORRECT)") == 8  # 7 shots + the question
