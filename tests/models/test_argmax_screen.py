"""The output layer's screen (fp16 and int8 copies): its error bound holds, its pick is the full fp32 layer's
(certified rows from the candidates, the others from their contenders or the whole layer), and greedy
generation through it gives the same text; it stays out of sampling, bf16 weights, small vocabularies and
re-ranking generation settings."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from selftaught.config import ModelConfig
from selftaught.generation import Generator, argmax_screen
from selftaught.generation.argmax_screen import Screen, screen_of, screened
from selftaught.generation.sampling import Sampling
from selftaught.models import load_model
from tests.tiny_hf import build_bpe_tokenizer, build_model

KERNELS = [k for k in argmax_screen.KERNELS if k != "fp16" or argmax_screen.preferred_kernel(64) == "fp16"]
PROMPTS = [f"Q: what is {k} plus {k + 1}? A: {2 * k + 1}. Q: and {k} plus 2? A:" for k in range(5)]


def layer_and_states(vocabulary=4096, hidden=64, rows=64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(vocabulary, hidden, generator=generator) * 0.05
    states = torch.randn(rows, hidden, generator=generator) * 3
    states[: rows // 2] += weight[torch.arange(rows // 2) * 7] * 60  # peaked rows: a clear winner
    return weight, states


def assert_full_layers_pick(picks, logits):
    """Each pick is the full layer's argmax, or a token within fp32 summation order of it (a tie closer than
    1e-5, where one dot product and the full matmul's sum may round apart)."""
    best = logits.amax(1)
    picked = logits.gather(1, picks[:, None]).squeeze(1)
    assert bool((picked >= best - 1e-5 * best.abs().clamp_min(1)).all())
    assert int((picks != logits.argmax(1)).sum()) <= 2


@pytest.mark.parametrize("kernel", KERNELS)
def test_the_error_bound_holds_for_every_token(kernel):
    weight, states = layer_and_states()
    screen = Screen.of(weight, kernel, chunk_rows=1000)  # chunks: blocks and per-row terms joined in order
    approximate, rounded = screen.approximate(states)
    terms = screen._row_terms(states, rounded)
    actual = (states.double() @ weight.double().t() - approximate.double()).abs()
    assert bool((actual <= screen._error(terms) + approximate.abs() * screen.output_rounding).all())
    assert float(actual.max()) > 0  # the screen is not exact: the bound has work to do
    assert bool((screen._largest_error(terms)[:, None] >= screen._error(terms)).all())  # the cheap first check


@pytest.mark.parametrize("kernel", KERNELS)
def test_the_pick_is_the_full_layers_and_rows_the_bound_cannot_certify_get_exact_scores(kernel):
    weight, states = layer_and_states()
    generator = torch.Generator().manual_seed(1)
    # near-ties: 300 tokens a hair apart (contenders, fewer than an eighth of 4,096), and 1,500 (more)
    for first, count, like in ((1000, 300, 200), (2000, 1500, 300)):
        noise = torch.randn(count, weight.shape[1], generator=generator) * 1e-4
        weight[first : first + count] = weight[like] * 40 + noise
    states[-8:-4] = weight[200] / weight[200].norm() * 30 + states[-8:-4] * 1e-3
    states[-4:] = weight[300] / weight[300].norm() * 30 + states[-4:] * 1e-3
    screen = Screen.of(weight, kernel)
    assert_full_layers_pick(screen.logits(states).argmax(1), states @ weight.t())  # 1,800 near-ties: ties at 1e-6
    counts = screen.counts  # clear rows from the candidates, 300 near-ties as contenders, 1,500 in full
    assert counts["candidates"] > 0 and counts["contenders"] >= 4 and counts["full"] >= 4


def test_the_screen_is_remade_when_the_weight_changes_in_place():
    layer = nn.Linear(64, 4096, bias=False)
    first = screen_of(layer)
    assert screen_of(layer) is first
    with torch.no_grad():
        layer.weight.mul_(2)
    assert screen_of(layer) is not first


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    folder = tmp_path_factory.mktemp("llama") / "model"
    tokenizer = build_bpe_tokenizer(PROMPTS, vocab_size=300)
    model = build_model(tokenizer)
    with torch.no_grad():
        model.lm_head.weight.mul_(40)  # peaked next-token scores, as a trained model's, so most rows certify
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("backend", ["hf", "sampler"])
def test_greedy_generation_through_the_screen_gives_the_same_text(llama, backend, monkeypatch):
    monkeypatch.setattr(argmax_screen, "MIN_VOCABULARY", 0)
    lm = load_model(llama, ModelConfig(chat_template="off"))
    full = Generator(lm, backend, batch_size=3, output_screen=False).complete(PROMPTS, [10] * 5)
    assert getattr(lm.model.lm_head, argmax_screen._ATTRIBUTE, None) is None  # the library path: no screen
    texts = Generator(lm, backend, batch_size=3).complete(PROMPTS, [10] * 5)
    assert texts == full
    screen = screen_of(lm.model.lm_head)
    assert screen.counts["candidates"] > 0
    assert "forward" not in vars(lm.model.lm_head)  # the layer is itself again after each batch


def test_the_screen_stays_out_where_it_could_change_the_pick(llama, monkeypatch):
    lm = load_model(llama, ModelConfig(chat_template="off"))
    with screened(lm.model) as screen:
        assert screen is None  # 300 tokens: below MIN_VOCABULARY
    monkeypatch.setattr(argmax_screen, "MIN_VOCABULARY", 0)
    with screened(lm.model, enabled=False) as screen:  # sampling: every token's logit matters
        assert screen is None
    lm.model.generation_config.repetition_penalty = 1.3  # `generate` re-ranks after the layer
    assert not argmax_screen.eligible(lm.model)
    lm.model.generation_config.repetition_penalty = 1.0
    assert argmax_screen.eligible(lm.model)
    lm.model.to(torch.bfloat16)
    assert not argmax_screen.eligible(lm.model)


def test_sampling_never_meets_the_screen(llama, monkeypatch):
    monkeypatch.setattr(argmax_screen, "MIN_VOCABULARY", 0)
    lm = load_model(llama, ModelConfig(chat_template="off"))
    calls = []
    monkeypatch.setattr(Screen, "logits", lambda self, hidden: calls.append(hidden) or None)
    Generator(lm, "sampler", batch_size=5).complete(PROMPTS, [4] * 5, Sampling(temperature=1.0, seed=1))
    assert calls == []


@pytest.mark.parametrize("kernel", KERNELS)
def test_a_row_the_cheap_check_rejects_is_certified_token_by_token(kernel):
    weight, states = layer_and_states(rows=8)
    generator = torch.Generator().manual_seed(2)
    weight[5] = torch.randn(weight.shape[1], generator=generator) * 0.05
    if kernel == "int8":
        weight[5, 0] = 50.0  # a huge scale: the rest of the row rounds to 0, so its residual bound is the largest
        states[:, 0] = 0.0  # ... and token 5 scores low, far under its own bound's reach
        states += weight[7] * 400  # token 7 wins clearly
    else:
        weight[5] = -40 * weight[7]  # token 5 scores far under token 7, the clear winner ...
        weight[5, 0] = 65_520.0  # ... with a weight past fp16's largest (65,504): the largest residual bound
        states += weight[7] * 400
        states[:, 0] = 0.0
    screen = Screen.of(weight, kernel)
    assert float(weight[5, 0]) in (50.0, 65_520.0)  # fbgemm saturates what it packs, in place: it packs a clone
    approximate, rounded = screen.approximate(states)
    top = approximate.topk(argmax_screen.CANDIDATES, dim=1).indices
    best = torch.bmm(weight[top], states[:, :, None]).squeeze(2).amax(1)
    terms = screen._row_terms(states, rounded)
    assert not bool(screen._certified(terms, approximate, top, best).any())  # token 5's error rules out all
    assert torch.equal(screen.logits(states).argmax(1), (states @ weight.t()).argmax(1))
    assert screen.counts == {"candidates": 8}  # each row certified token by token, no exact score beyond 64


@pytest.mark.parametrize("kernel", KERNELS)
def test_a_vocabulary_no_larger_than_the_candidates_is_scored_exactly(kernel):
    weight, states = layer_and_states(vocabulary=48, rows=6)
    screen = Screen.of(weight, kernel)
    assert torch.equal(screen.logits(states), states @ weight.t()) or torch.allclose(
        screen.logits(states), states @ weight.t(), atol=1e-5
    )
    assert screen.counts == {"candidates": 12}


def test_the_layers_own_forward_comes_back_after_errors_and_nesting(llama, monkeypatch):
    monkeypatch.setattr(argmax_screen, "MIN_VOCABULARY", 0)
    lm = load_model(llama, ModelConfig(chat_template="off"))
    layer = lm.model.lm_head
    own = layer.forward  # an instance forward set before (accelerate's hooks set one)
    layer.forward = own
    with pytest.raises(RuntimeError), screened(lm.model):
        with screened(lm.model) as inner:
            assert inner is not None and layer.forward is not own
        assert layer.forward is not own  # the inner block left the outer one's patch
        raise RuntimeError("generation failed")
    assert vars(layer)["forward"] is own


def test_beam_search_and_odd_hidden_sizes_keep_the_full_layer(llama, monkeypatch):
    monkeypatch.setattr(argmax_screen, "MIN_VOCABULARY", 0)
    lm = load_model(llama, ModelConfig(chat_template="off"))
    assert argmax_screen.eligible(lm.model)
    lm.model.generation_config.num_beams = 2  # beams rank by whole sequences' scores
    assert not argmax_screen.eligible(lm.model)
    lm.model.generation_config.num_beams = 1
    lm.model.lm_head = nn.Linear(60, lm.model.lm_head.out_features, bias=False)  # 60: not a multiple of 16
    assert argmax_screen.eligible(lm.model) == (argmax_screen.preferred_kernel(60) == "fp16")  # fp16: any size
    monkeypatch.setattr(argmax_screen.fp16_weights, "available", lambda: False)  # ARM
    assert argmax_screen.preferred_kernel(64) == "int8" and not argmax_screen.eligible(lm.model)
