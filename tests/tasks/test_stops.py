"""Completions end at the answer. A tiny base-model stand-in answers, then keeps writing made-up
``Q:``/``A:`` blocks until its budget runs out (as a pretrained LM does under a few-shot prompt);
through every backend, generated and kept texts must end at the answer."""

from __future__ import annotations

import re
import sys

import pytest

from selftaught import rundir
from selftaught.generation import Generator, make_generator
from selftaught.generation.sampler import eos_ids
from selftaught.generation.sampling import Sampling
from selftaught.loop import run_star
from selftaught.models import load_model
from selftaught.tasks import make_task
from selftaught.tasks.stops import NO_STOP, Stop
from selftaught.training.sft import encode_pairs
from tests import fake_vllm
from tests.models.test_real_models import GSM_ROWS, make_config, write_gsm
from tests.tiny_hf import babble_pairs, save_babbler

BUDGET = 120
ENDS_AT_ANSWER = re.compile(r"#### \d+$")


@pytest.fixture(scope="module")
def babbler(tmp_path_factory):
    root = tmp_path_factory.mktemp("babbler")
    write_gsm(root)
    config = make_config(root, "gsm8k", loop={"iterations": 1, "filter": "answer", "patience": 0})
    config.task.data.max_new_tokens = BUDGET
    task = make_task(config)
    examples = task.load("train")
    blocks = [f"Q: {q}\nA: {a}" for q, a in GSM_ROWS]
    answers = [dict(ex.meta)["solution"] for ex in examples]
    pairs = babble_pairs([task.prompt(ex) for ex in examples], answers, blocks)
    corpus = [root.joinpath(n).read_text() for n in ("train.jsonl", "prompts.txt")] + [p + c for p, c in pairs]
    save_babbler(root / "model", corpus, pairs, steps=120)
    return config, root, task, examples


def _complete(generator, task, examples, stop):
    prompts = [task.prompt(ex) for ex in examples]
    return [texts[0] for texts in generator.complete(prompts, [BUDGET] * len(prompts), Sampling(stop=stop))]


def test_without_stops_the_stand_in_babbles(babbler):
    config, root, task, examples = babbler
    generator = Generator(load_model(root / "model", config.model), "hf", batch_size=6)
    texts = _complete(generator, task, examples, NO_STOP)
    assert sum("\nQ:" in t for t in texts) >= len(texts) - 1  # it writes the next question
    assert generator.tokens_generated >= 0.9 * BUDGET * len(examples)  # and runs to its budget


@pytest.mark.parametrize("backend", ["sampler", "hf"])
def test_every_in_process_backend_stops_at_the_answer(babbler, backend):
    config, root, task, examples = babbler
    generator = Generator(load_model(root / "model", config.model), backend, batch_size=4)
    texts = _complete(generator, task, examples, task.stop())
    assert all(ENDS_AT_ANSWER.search(t) and "Q:" not in t for t in texts), texts
    assert sum(task.check(task.extract_answer(t, ex), ex) for t, ex in zip(texts, examples)) >= 5
    assert generator.tokens_generated < 0.5 * BUDGET * len(examples)  # it stopped generating, too


def test_sampler_and_generate_stop_on_the_same_token(babbler):
    config, root, task, examples = babbler
    lm = load_model(root / "model", config.model)
    ours, theirs = Generator(lm, "sampler", 3), Generator(lm, "hf", 3)
    assert _complete(ours, task, examples, task.stop()) == _complete(theirs, task, examples, task.stop())
    assert ours.tokens_generated == theirs.tokens_generated


def test_vllm_backend_passes_stops_and_cuts(babbler, monkeypatch):
    config, root, task, examples = babbler
    monkeypatch.setitem(sys.modules, "vllm", fake_vllm.module())
    config.generation.backend = "vllm"
    try:
        generator = make_generator(root / "model", config)
    finally:
        config.generation.backend = "auto"
    texts = _complete(generator, task, examples[:3], task.stop())
    assert all(ENDS_AT_ANSWER.search(t) and "Q:" not in t for t in texts), texts
    llm = fake_vllm.LLM.instances[-1]
    assert llm.kwargs["enable_prefix_caching"] is True
    assert all(params.stop == ["\nQ:"] for params in llm.calls[-1])
    assert generator.tokens_generated < 0.5 * BUDGET * 3


def test_star_stores_and_trains_on_texts_that_end_at_the_answer(babbler, tmp_path):
    config, root, task, examples = babbler
    run_star(config, tmp_path / "run")
    folder = tmp_path / "run" / "iter_001"
    generated = rundir.read_jsonl(folder / "generated.jsonl")
    assert generated and all("Q:" not in row["text"] for row in generated)
    train = rundir.read_jsonl(folder / "train.jsonl")
    assert len(train) >= 4 and all(ENDS_AT_ANSWER.search(r["completion"]) for r in train)
    lm = load_model(root / "model", config.model)
    features = encode_pairs(lm.tokenizer, lm.scheme, [(r["prompt"], r["completion"]) for r in train])
    assert all(f["labels"][-1] == lm.tokenizer.eos_token_id for f in features)  # a trained model stops


def test_stop_at_answer_false_generates_to_the_budget(babbler, monkeypatch):
    config, root, task, examples = babbler
    seen = []
    monkeypatch.setattr(
        Generator, "complete", lambda self, prompts, budgets, sampling: seen.append(sampling.stop) or [[""]] * 3
    )
    from selftaught.evaluate import evaluate_model

    evaluate_model(config, str(root / "model"))
    config.generation.stop_at_answer = False
    try:
        evaluate_model(config, str(root / "model"))
    finally:
        config.generation.stop_at_answer = True
    assert seen == [task.stop(), NO_STOP]


def test_chat_models_end_at_their_turn_unless_the_user_set_stops():
    task_stop = Stop(("\nQ:",), r"####[^\n]*")
    assert task_stop.for_chat(False) is task_stop and task_stop.for_chat(True) is NO_STOP
    user = Stop(("###",), in_chat=True)
    assert user.for_chat(True) is user


def test_eos_ids_include_the_generation_configs_end_of_turn(babbler):
    config, root, task, examples = babbler
    lm = load_model(root / "model", config.model)
    lm.model.generation_config.eos_token_id = [lm.tokenizer.eos_token_id, 7]
    assert eos_ids(lm.model, lm.tokenizer) == sorted({lm.tokenizer.eos_token_id, 7})


def test_custom_stops_from_the_config(tmp_path):
    from selftaught.config import ConfigError, config_from_dict

    data = tmp_path / "d.jsonl"
    data.write_text('{"question": "q", "answer": "a"}\n')
    config = config_from_dict({"task": {"name": "jsonl", "data": {"test": str(data), "stop": ["\nEND"]}}})
    stop = make_task(config).stop()
    assert stop.strings == ("\nEND",) and stop.in_chat
    assert make_task(config_from_dict({"task": {"name": "jsonl", "data": {"test": str(data)}}})).stop().strings == (
        "\nQ:",
    )
    with pytest.raises(ConfigError, match="task.data.stop"):
        config_from_dict({"task": {"data": {"stop": "\nQ:"}}})


@pytest.mark.parametrize("backend", ["sampler", "hf"])
@pytest.mark.parametrize("with_stop", [False, True])
def test_prefix_cache_gives_the_same_greedy_text(babbler, backend, with_stop):
    config, root, task, examples = babbler
    lm = load_model(root / "model", config.model)
    cached, plain = Generator(lm, backend, 4, prefix_cache=True), Generator(lm, backend, 4, prefix_cache=False)
    stop = task.stop() if with_stop else NO_STOP
    for hint in (False, True):  # a phase's prompts share the plain or the hinted few-shot prefix
        prompts = [task.prompt(ex, hint=hint) for ex in examples]
        budgets = [BUDGET] * len(prompts)
        assert cached.complete(prompts, budgets, Sampling(stop=stop)) == plain.complete(
            prompts, budgets, Sampling(stop=stop)
        )
        shared = cached.prefixes.current
        assert shared is not None and len(shared.ids) >= 32 and plain.prefixes.current is None
    assert cached.tokens_generated == plain.tokens_generated


@pytest.mark.parametrize("backend", ["sampler", "hf", "vllm"])
def test_completions_say_whether_the_budget_cut_them(babbler, backend, monkeypatch):
    config, root, task, examples = babbler
    if backend == "vllm":
        monkeypatch.setitem(sys.modules, "vllm", fake_vllm.module())
    config.generation.backend = backend
    try:
        generator = make_generator(root / "model", config)
    finally:
        config.generation.backend = "auto"
    prompts = [task.prompt(ex) for ex in examples[:3]]
    ended = [t[0] for t in generator.complete(prompts, [BUDGET] * 3, Sampling(stop=task.stop()))]
    assert all(ENDS_AT_ANSWER.search(t) for t in ended) and not any(t.truncated for t in ended)
    cut = [t[0] for t in generator.complete(prompts, [6] * 3, Sampling(stop=task.stop()))]  # mid-rationale
    assert all(t.truncated for t in cut), cut
    babbled = [t[0] for t in generator.complete(prompts, [BUDGET] * 3, Sampling(stop=NO_STOP))]
    assert all(t.truncated for t in babbled)  # it never stops by itself: the budget ends every one
