"""``generation.precision=fp16-weights``: every layer but the output layer multiplies through an fp16 copy of
its weights (fbgemm), close to fp32; ``auto`` picks it on a CPU without native bf16 for a large model only."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from selftaught import models
from selftaught.config import ConfigError, ModelConfig, config_from_dict
from selftaught.generation import Generator
from selftaught.models import fp16_weights, load_model
from tests.tiny_hf import build_bpe_tokenizer, build_model

pytestmark = pytest.mark.skipif(not fp16_weights.available(), reason="fbgemm's fp16 GEMM runs on x86 only")
PROMPTS = [f"Q: what is {k} plus {k + 1}? A: {2 * k + 1}. Q: and {k} plus 2? A:" for k in range(4)]


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    folder = tmp_path_factory.mktemp("llama") / "model"
    tokenizer = build_bpe_tokenizer(PROMPTS, vocab_size=300)
    build_model(tokenizer).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_packed_layers_compute_with_fp16_weights_and_leave_the_model_as_it_was(llama):
    lm = load_model(llama, ModelConfig(chat_template="off"))
    model = lm.model
    ids = lm.tokenizer(PROMPTS, return_tensors="pt", padding=True)
    with torch.no_grad():
        exact = model(**ids).logits
        weights = {name: p.clone() for name, p in model.named_parameters()}
        body = [m for m in model.modules() if type(m) is nn.Linear and m is not model.lm_head]
        body[0].weight[0, 0] = 1e5  # past fp16's range: that layer stays fp32
        assert fp16_weights.pack(model) == len(body) - 1 == fp16_weights.packed_layers(model)
        body[0].weight[0, 0] = weights[next(n for n, p in model.named_parameters() if p is body[0].weight)][0, 0]
        packed = model(**ids).logits
        rounded = {m: m.weight.half().float() for m in body[1:]}
        for module, weight in rounded.items():
            hidden = torch.randn(3, module.in_features)
            expected = nn.functional.linear(hidden, weight, module.bias)  # exactly the fp16-rounded weights
            torch.testing.assert_close(module(hidden), expected, atol=1e-5, rtol=1e-5)
    assert "forward" not in vars(model.lm_head) and "forward" not in vars(body[0])
    assert all(torch.equal(p, weights[name]) for name, p in model.named_parameters())  # packed from clones
    assert 0 < float((packed - exact).abs().max()) < 1e-2 * float(exact.abs().max())


def test_greedy_generation_runs_through_the_packed_layers(llama, monkeypatch):
    lm = models.load_for_generation(llama, ModelConfig(chat_template="off"), "fp16-weights")
    assert lm.precision == "fp16-weights" and next(lm.model.parameters()).dtype == torch.float32
    calls = []
    forward = fp16_weights._forward
    monkeypatch.setattr(fp16_weights, "_forward", lambda *args: calls.append(1) or forward(*args))
    lm = models.load_for_generation(llama, ModelConfig(chat_template="off"), "fp16-weights")
    texts = Generator(lm, "hf", batch_size=4).complete(PROMPTS, [6] * 4)
    assert len(texts) == 4 and calls


def test_auto_picks_fp16_weights_on_a_cpu_without_native_bf16_for_a_large_model_only(llama, monkeypatch):
    config = ModelConfig(device="cpu", chat_template="off")
    monkeypatch.setattr(models, "native_cpu_bf16", lambda: False)
    assert models.load_for_generation(llama, config, "auto").precision == "fp32"  # small: fits the caches
    monkeypatch.setattr(models, "MIN_BF16_CPU_PARAMETERS", 1)
    assert models.load_for_generation(llama, config, "auto").precision == "fp16-weights"
    assert models.load_for_generation(llama, config, "fp32").precision == "fp32"  # asked for
    asked = ModelConfig(device="cpu", chat_template="off", dtype="float32")
    assert models.load_for_generation(llama, asked, "auto").precision == "fp32"
    monkeypatch.setattr(models, "native_cpu_bf16", lambda: True)
    assert models.load_for_generation(llama, config, "auto").precision == "bf16"
    monkeypatch.setattr(models, "native_cpu_bf16", lambda: False)
    monkeypatch.setattr(fp16_weights, "available", lambda: False)  # ARM
    assert models.load_for_generation(llama, config, "auto").precision == "fp32"
    with pytest.raises(ConfigError, match="generation.precision=fp16-weights"):
        models.load_for_generation(llama, config, "fp16-weights")


def test_a_weight_changed_after_packing_is_multiplied_as_it_is_now(llama):
    model = load_model(llama, ModelConfig(chat_template="off")).model
    fp16_weights.pack(model)
    layer = next(m for m in model.modules() if type(m) is nn.Linear and m is not model.lm_head)
    hidden = torch.randn(2, layer.in_features)
    with torch.no_grad():
        layer.weight.mul_(3)  # e.g. a state dict loaded into the model after its copies were made
        assert torch.equal(layer(hidden), nn.functional.linear(hidden, layer.weight))
        layer.weight = nn.Parameter(torch.randn_like(layer.weight))  # replaced
        assert torch.equal(layer(hidden), nn.functional.linear(hidden, layer.weight))


def test_fp16_weights_is_refused_for_vllm_by_its_key():
    with pytest.raises(ConfigError, match="generation.precision=fp16-weights"):
        config_from_dict({"generation": {"precision": "fp16-weights", "backend": "vllm"}})
