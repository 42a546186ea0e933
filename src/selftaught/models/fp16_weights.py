"""Generation with fp16 weights multiplied in fp32: the ``fp16-weights`` generation precision.

Why: decoding a batch of 8 on a CPU reads every weight at every step, and in fp32 that traffic and MKL's
skinny-matrix kernels are most of a step (Gemma 3 270M's body: 58 ms of a 136 ms step on a 2-core AVX2
CPU). A CPU without native bf16 (AVX2) gains nothing from bf16 weights, but fbgemm's fp16 GEMM (torch's
dynamic fp16 linear, on x86) reads half the bytes and converts them in registers (F16C): the same 18 layers
of Gemma's shapes take 24 ms a step against 71 ms in fp32. Only the weights are rounded (to 11 significant
bits, a relative 2^-11, where bf16 keeps 8): activations, sums, norms, attention and the output layer stay
fp32, so greedy text stays close to fp32's (32 of 32 GSM8K answers equal on SmolLM2-135M, 31 of 32 on Gemma 3
270M, `benchmarks/speed_real.py`), far closer than bf16's.

The model keeps its fp32 weights (the output layer's screen scores its candidates with them); every other
`nn.Linear` gets an instance ``forward`` through a packed fp16 copy of its weight, made once at load. A
weight outside fp16's range keeps its layer in fp32 (fbgemm would saturate it), and a weight changed or
replaced after packing (a state dict loaded, an adapter merged) is multiplied as it is, in fp32.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

FP16_MAX = 65_504.0
_ATTRIBUTE = "_selftaught_fp16_weights"  # on the model: how many layers were packed


def available() -> bool:
    """Whether this torch runs fbgemm's fp16 GEMM: an x86 build, whose quantized engine is fbgemm's."""
    quantized = torch.backends.quantized
    return (
        "fbgemm" in quantized.supported_engines
        and quantized.engine in ("x86", "fbgemm")
        and hasattr(torch.ops.quantized, "linear_dynamic_fp16")
    )


def _forward(module: nn.Linear, packed, version: int, pointer: int, hidden: torch.Tensor) -> torch.Tensor:
    weight = module.weight
    if weight._version != version or weight.data_ptr() != pointer or hidden.dtype != torch.float32:
        return nn.functional.linear(hidden, weight, module.bias)  # changed since it was packed: as it is now
    return torch.ops.quantized.linear_dynamic_fp16(hidden, packed)


def pack(model) -> int:
    """Route every fp32 `nn.Linear` of ``model`` on a CPU but its output layer through an fp16 copy of its
    weight; returns how many. The copies are made of clones: fbgemm saturates what it packs in place."""
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    packed = 0
    for module in model.modules():
        weight = getattr(module, "weight", None)
        if type(module) is not nn.Linear or module is output or weight.dtype != torch.float32:
            continue
        if weight.device.type != "cpu" or float(weight.detach().abs().max()) > FP16_MAX:
            continue
        bias = module.bias.detach().clone() if module.bias is not None else None
        copy = torch.ops.quantized.linear_prepack_fp16(weight.detach().clone(), bias)
        module.forward = partial(_forward, module, copy, weight._version, weight.data_ptr())
        packed += 1
    setattr(model, _ATTRIBUTE, packed)
    return packed


def packed_layers(model) -> int:
    """How many of ``model``'s layers `pack` routed through fp16 copies (0 if none)."""
    return getattr(model, _ATTRIBUTE, 0)
