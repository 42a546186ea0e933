"""Shared-prefix attention: the prefix's part of the softmax computed against one shared copy gives SDPA's
attention, and greedy generation through it gives each prompt's own text."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from selftaught.config import ModelConfig
from selftaught.generation import Generator, shared_attention
from selftaught.generation.sampler import encode, hf_generate_ids
from selftaught.models import load_model
from tests.tiny_hf import build_bpe_tokenizer, build_model

PREFIX = " ".join(f"Q: what is {k} plus {k + 1}? A: {2 * k + 1}." for k in range(10))
QUESTIONS = ["Q: and 3 plus 4? A:", "Q: what is seven plus eight, said in words? A:", "Q: 1+1? A:", "Q: nine? A:"]


def cache_with_prefix(prefix_k, prefix_v, starts, slots, generator):
    """Static-cache-shaped keys/values: row i holds the prefix at starts[i], random own tokens after it,
    zeros (pads and unwritten slots) elsewhere; the mask keeps the prefix and the row's first ``own`` slots."""
    rows, length = len(starts), prefix_k.shape[2]
    kv_heads, dim = prefix_k.shape[1], prefix_k.shape[3]
    keys = torch.zeros(rows, kv_heads, slots, dim)
    values = torch.zeros(rows, kv_heads, slots, dim)
    mask = torch.zeros(rows, 1, 1, slots, dtype=torch.bool)
    for row, start in enumerate(starts):
        own = 3 + row
        keys[row, :, start : start + length], values[row, :, start : start + length] = prefix_k[0], prefix_v[0]
        end = start + length + own
        keys[row, :, start + length : end] = torch.randn(kv_heads, own, dim, generator=generator)
        values[row, :, start + length : end] = torch.randn(kv_heads, own, dim, generator=generator)
        mask[row, 0, 0, start:end] = True
    return keys, values, mask


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("starts", [[3, 0, 5, 1], [25, 0, 2, 30]])  # the second: pads longer than the prefix
def test_shared_prefix_attention_equals_sdpa_over_every_row_copy(dtype, starts):
    generator = torch.Generator().manual_seed(0)
    rows, heads, kv_heads, dim, length = 4, 6, 2, 16, 20
    prefix_k = torch.randn(1, kv_heads, length, dim, generator=generator)
    prefix_v = torch.randn(1, kv_heads, length, dim, generator=generator)
    keys, values, mask = cache_with_prefix(prefix_k, prefix_v, starts, 64, generator)
    layer = SimpleNamespace(keys=keys.to(dtype), values=values.to(dtype), is_sliding=False)
    prefix = SimpleNamespace(layers=[SimpleNamespace(keys=prefix_k, values=prefix_v)])
    shared_attention.attach(SimpleNamespace(layers=[layer]), prefix, starts)
    groups = heads // kv_heads
    narrower = mask.clone()
    narrower[1, 0, 0, starts[1] + length + 2 :] = False  # the next step's mask differs: its split is redone
    for step_mask in (mask, narrower):
        query = torch.randn(rows, heads, 1, dim, generator=generator)
        expected = F.scaled_dot_product_attention(
            query,
            keys.repeat_interleave(groups, 1),
            values.repeat_interleave(groups, 1),
            attn_mask=step_mask,
            scale=0.3,
        ).transpose(1, 2)
        got, _ = shared_attention.attention(None, query.to(dtype), layer.keys, layer.values, step_mask, scaling=0.3)
        assert got.shape == (rows, 1, heads, dim) and got.dtype == dtype
        tolerance = 1e-5 if dtype == torch.float32 else 3e-2
        torch.testing.assert_close(got.float(), expected, atol=tolerance, rtol=tolerance)


@pytest.fixture(scope="module")
def gqa_llama(tmp_path_factory):
    """A random Llama with grouped keys and values (4 query heads, 2 key/value heads)."""
    folder = tmp_path_factory.mktemp("llama") / "model"
    tokenizer = build_bpe_tokenizer([PREFIX, *QUESTIONS], vocab_size=300)
    build_model(tokenizer).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("backend", ["hf", "sampler"])
def test_generation_through_the_shared_prefix_gives_each_prompts_own_text(gqa_llama, backend, monkeypatch):
    lm = load_model(gqa_llama, ModelConfig(chat_template="off"))
    prompts = [f"{PREFIX} {q}" for q in QUESTIONS]
    alone = [
        lm.tokenizer.decode(hf_generate_ids(lm.model, lm.tokenizer, encode(lm.tokenizer, [p]), 12)[0]) for p in prompts
    ]
    calls = []
    original = shared_attention.shared_prefix_attention

    def counted(query, *args):
        calls.append(query.shape)
        return original(query, *args)

    monkeypatch.setattr(shared_attention, "shared_prefix_attention", counted)
    generator = Generator(lm, backend, batch_size=4, prefix_cache=True)
    assert lm.model.config._attn_implementation == shared_attention.NAME
    assert [t[0] for t in generator.complete(prompts, [12] * 4)] == alone
    assert len(calls) >= 2 * 11  # both layers, at every decode step after the first forward
    assert all(shape[0] == 4 and shape[2] == 1 for shape in calls)


def test_a_model_that_does_not_run_sdpa_or_is_not_a_checked_architecture_keeps_its_attention(gqa_llama, monkeypatch):
    lm = load_model(gqa_llama, ModelConfig(chat_template="off"))
    lm.model.set_attn_implementation("eager")
    assert not shared_attention.enable(lm.model)
    assert lm.model.config._attn_implementation == "eager"
    lm.model.set_attn_implementation("sdpa")
    monkeypatch.setattr(shared_attention, "MODEL_TYPES", ("qwen2",))
    assert not shared_attention.enable(lm.model)
    assert lm.model.config._attn_implementation == "sdpa"


def test_a_ring_window_holds_the_rolled_windows_tokens_and_its_turned_mask_their_order():
    """After every decoded token the ring's slots, turned by its head, are transformers' rolled window, and
    window attention under the turned mask is SDPA's over the rolled window."""
    from transformers.cache_utils import StaticSlidingWindowLayer

    generator = torch.Generator().manual_seed(0)
    rolled, ring = StaticSlidingWindowLayer(max_cache_len=64, sliding_window=8), shared_attention.RingWindowLayer(64, 8)
    prefill = torch.randn(2, 1, 11, 4, generator=generator)  # longer than the window: full from the start
    for layer in (rolled, ring):
        layer.update(prefill, prefill + 1)
    for step in range(19):
        if step == 11:  # beam search reorders rows into new tensors: the ring still marks the ones it returns
            for layer in (rolled, ring):
                layer.reorder_cache(torch.tensor([1, 0]))
        new = torch.randn(2, 1, 1, 4, generator=generator)
        keys, values = rolled.update(new, new + 1)
        ring_keys, ring_values = ring.update(new, new + 1)
        assert torch.equal(ring_keys.roll(-ring.head, dims=-2), keys)
        mask = torch.rand(2, 1, 1, 8, generator=generator) > 0.3
        mask[..., -1] = True  # a row sees its own token
        query = torch.randn(2, 2, 1, 4, generator=generator)
        expected, _ = shared_attention.sdpa_attention_forward(
            SimpleNamespace(num_key_value_groups=2, is_causal=True, training=False), query, keys, values, mask, 0.0, 0.5
        )
        got, _ = shared_attention.attention(None, query, ring_keys, ring_values, mask, scaling=0.5, sliding_window=8)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert ring.head == 19 % 8
