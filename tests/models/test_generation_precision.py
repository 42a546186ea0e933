"""Generation on real-model shapes: the prefix cache under sliding-window layers (Gemma 3), last-position
logits only, and ``generation.precision`` (bf16 weights where the CPU computes bf16 natively)."""

from __future__ import annotations

import functools

import pytest
import torch
from transformers import Gemma3ForCausalLM, Gemma3TextConfig

from selftaught import models
from selftaught.config import ConfigError, ModelConfig, config_from_dict
from selftaught.generation import Generator, make_generator
from selftaught.generation.sampler import encode, hf_generate_ids
from selftaught.models import generation_dtype, load_model
from tests.tiny_hf import build_bpe_tokenizer

PREFIX = " ".join(f"Q: what is {k} plus {k + 1}? A: {2 * k + 1}." for k in range(12))
QUESTIONS = ["Q: and 3 plus 4? A:", "Q: what is seven plus eight, said in words? A:", "Q: 1+1? A:", "Q: nine? A:"]


@pytest.fixture(scope="module")
def sliding_model(tmp_path_factory):
    """A random Gemma 3 whose sliding window (16) is far shorter than the shared prefix (~100 tokens)."""
    folder = tmp_path_factory.mktemp("gemma") / "model"
    tokenizer = build_bpe_tokenizer([PREFIX, *QUESTIONS], vocab_size=300)
    torch.manual_seed(0)
    config = Gemma3TextConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=3,
        num_attention_heads=2, num_key_value_heads=1, head_dim=32, sliding_window=16,
        layer_types=["sliding_attention", "full_attention", "sliding_attention"], max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, bos_token_id=None,
    )  # fmt: skip
    Gemma3ForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("backend", ["hf", "sampler"])
def test_prefix_cache_under_a_sliding_window_matches_each_prompt_alone(sliding_model, backend):
    """Pads must not sit inside a sliding window: each row's text is the text of its prompt generated
    alone (no padding at all), with and without the shared prefix's cache."""
    lm = load_model(sliding_model, ModelConfig(chat_template="off"))
    prompts = [f"{PREFIX} {q}" for q in QUESTIONS]
    budget = 40  # 2.5 windows: the decoding ring (`RingWindowLayer`) comes round twice
    alone = [
        lm.tokenizer.decode(hf_generate_ids(lm.model, lm.tokenizer, encode(lm.tokenizer, [p]), budget)[0])
        for p in prompts
    ]
    cached = Generator(lm, backend, batch_size=4, prefix_cache=True)
    assert [t[0] for t in cached.complete(prompts, [budget] * 4)] == alone
    assert cached.prefixes.current is not None and len(cached.prefixes.current.ids) > 3 * 16
    plain = Generator(lm, backend, batch_size=4, prefix_cache=False)
    assert [t[0] for t in plain.complete(prompts, [budget] * 4)] == alone


def test_the_prefix_is_encoded_without_full_vocabulary_logits(sliding_model, monkeypatch):
    """Only the last position's logits are computed for the prefix and the first forward of a batch
    (Gemma 3's 262k vocabulary over a 1k-token prefix would be a 1 GB float32 tensor)."""
    lm = load_model(sliding_model, ModelConfig(chat_template="off"))
    seen = []
    forward = lm.model.forward

    @functools.wraps(forward)  # keeps forward's signature, which says it takes logits_to_keep
    def spy(*args, **kwargs):
        out = forward(*args, **kwargs)
        seen.append(out.logits.shape[1])
        return out

    monkeypatch.setattr(lm.model, "forward", spy)
    Generator(lm, "sampler", batch_size=4).complete([f"{PREFIX} {q}" for q in QUESTIONS], [3] * 4)
    assert seen and set(seen) == {1}


def test_generation_precision_picks_bf16_only_where_the_cpu_computes_it(monkeypatch):
    cpu = ModelConfig(device="cpu")
    assert generation_dtype("bf16", cpu) == torch.bfloat16 and generation_dtype("fp32", cpu) == torch.float32
    monkeypatch.setattr(models, "native_cpu_bf16", lambda: True)
    assert generation_dtype("auto", cpu) == torch.bfloat16
    assert generation_dtype("auto", ModelConfig(device="cpu", dtype="float32")) == torch.float32  # asked for
    monkeypatch.setattr(models, "native_cpu_bf16", lambda: False)
    assert generation_dtype("auto", cpu) == torch.float32
    with pytest.raises(ConfigError, match="generation.precision"):
        config_from_dict({"generation": {"precision": "half"}})


def test_make_generator_loads_weights_in_the_generation_dtype_and_training_stays_fp32(sliding_model):
    config = config_from_dict(
        {"model": {"name_or_path": str(sliding_model), "chat_template": "off"}, "generation": {"precision": "bf16"}}
    )
    generator = make_generator(sliding_model, config)
    assert next(generator.loaded.model.parameters()).dtype == torch.bfloat16
    texts = generator.complete([f"{PREFIX} {QUESTIONS[0]}"], [4])
    assert len(texts) == 1 and isinstance(texts[0][0], str)
    assert next(load_model(sliding_model, config.model).model.parameters()).dtype == torch.float32


def test_auto_precision_keeps_a_small_model_in_fp32_on_a_cpu(sliding_model, monkeypatch):
    """bf16 pays on a CPU only once the weights are large; the embedded model generated slower in it."""
    monkeypatch.setattr(models, "native_cpu_bf16", lambda: True)
    config = ModelConfig(device="cpu", chat_template="off")
    stored = models.stored_parameters(sliding_model)
    assert stored == sum(p.numel() for p in load_model(sliding_model, config).model.parameters())
    assert models.load_for_generation(sliding_model, config, "auto").model.dtype == torch.float32
    assert models.load_for_generation(sliding_model, config, "bf16").model.dtype == torch.bfloat16
    asked = ModelConfig(device="cpu", chat_template="off", dtype="bfloat16")  # asked for, whatever the size
    assert models.load_for_generation(sliding_model, asked, "auto").model.dtype == torch.bfloat16
    monkeypatch.setattr(models, "stored_parameters", lambda path: None)  # e.g. a hub id: counts as large
    assert models.load_for_generation(sliding_model, config, "auto").model.dtype == torch.bfloat16
    monkeypatch.undo()
    monkeypatch.setattr(models, "native_cpu_bf16", lambda: True)
    monkeypatch.setattr(models, "MIN_BF16_CPU_PARAMETERS", 1)
    big = models.load_for_generation(sliding_model, config, "auto").model
    assert big.dtype == torch.bfloat16
    assert all(b.dtype == torch.float32 for n, b in big.named_buffers() if "inv_freq" in n)  # as from_pretrained
    monkeypatch.setattr(models, "native_cpu_bf16", lambda: False)
    assert models.load_for_generation(sliding_model, config, "auto").model.dtype == torch.float32


def test_the_output_layer_gets_a_flat_contiguous_input_and_the_logits_keep_their_shape(sliding_model):
    """A strided ``hidden[:, -1:, :]`` sent to a bf16 output layer went through `bmm` with the weight
    copied per row; the generator hands it a 2-D contiguous matrix, and the logits are unchanged."""
    from selftaught.generation import flat_output_layer

    lm = load_model(sliding_model, ModelConfig(chat_template="off"), dtype=torch.bfloat16)
    ids = lm.tokenizer([f"{PREFIX} {q}" for q in QUESTIONS[:2]], return_tensors="pt", padding=True)["input_ids"]
    with torch.inference_mode():
        before = lm.model(ids, logits_to_keep=1).logits
        flat_output_layer(lm.model)
        flat_output_layer(lm.model)  # once is enough: a second call adds no hooks
        seen = []
        lm.model.get_output_embeddings().register_forward_pre_hook(lambda m, a: seen.append(a[0]))
        after = lm.model(ids, logits_to_keep=1).logits
    assert after.shape == before.shape == (2, 1, len(lm.tokenizer)) and torch.equal(after, before)
    assert seen[0].dim() == 2 and seen[0].is_contiguous()
