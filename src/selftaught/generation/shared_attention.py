"""Shared-prefix attention for decoding: the few-shot prefix's keys and values read once per step, not once
per row.

Every row of a generation batch starts with the same ~1k-token prefix (`prefix.SharedPrefix`), copied
into each row of the static cache. Decoding one token per row is bound by memory traffic on a CPU, and
plain attention reads the prefix's keys and values once per row: for SmolLM2-135M (30 layers, 3 key/value
heads of 64) and a batch of 8 that is 8 x 32 MB per step in bf16, about as much as the weights. Here
the prefix's part of each row's softmax is computed against one shared copy (one matmul per key/value
head over all rows' queries), the rest against the row's own slots (pads, question, generated tokens),
and the two parts are merged with their softmax denominators, as in cascade attention (FlashInfer) or
Hydragen. The result is the same attention, summed in another order.

The model runs under a registered attention implementation (`NAME`) whose masks are SDPA's; any call it
does not handle (prefill, no shared prefix on this cache layer, sliding-window layers, soft-capping, a
float mask) goes to transformers' own SDPA function unchanged. The shared copy travels as an attribute of
the cache layer's key tensor (`attach`), so it lives and dies with that batch's cache.
"""

from __future__ import annotations

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

NAME = "selftaught_shared_prefix"
_ATTRIBUTE = "_selftaught_shared_prefix"
_SPECIAL = ("softcap", "s_aux", "sinks", "indices", "position_bias", "sliding_window")  # not implemented here
# architectures whose attention is checked to call the attention function with plain queries, keys and values,
# and whose model code does not branch on the implementation's name being "sdpa" (Gemma 4 and Falcon do)
MODEL_TYPES = ("llama", "mistral", "qwen2", "qwen3", "gemma3_text")


def enable(model) -> bool:
    """Run ``model``'s attention through `attention` where it now runs SDPA on a CPU (where the gain was
    measured; on CUDA `generate` compiles static-cache decoding, which this Python-side path would break up)
    and its architecture is one of `MODEL_TYPES`; True if so."""
    config = getattr(model, "config", None)
    if getattr(config, "_attn_implementation", None) != "sdpa" or getattr(config, "model_type", "") not in MODEL_TYPES:
        return False
    if next(model.parameters()).device.type != "cpu":
        return False
    AttentionInterface.register(NAME, attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)
    model.set_attn_implementation(NAME)
    return model.config._attn_implementation == NAME  # remote code may refuse it


class _Rows:
    """Where each row of one batch holds the shared prefix (slots ``starts[i]`` onwards, ``length`` long),
    and what a step's mask allows of it: worked out once per mask, since every layer gets the same one."""

    def __init__(self, starts: torch.Tensor, length: int):
        self.starts, self.length = starts, length
        self._mask, self._split = None, None

    def split(self, mask: torch.Tensor) -> tuple[int, int, torch.Tensor]:
        """(first, end, bias): each row's own slots are ``first:end`` (from the earliest prefix end to the
        last slot any row may see), and ``bias`` (0 or -inf, ``[rows, 1, 1, length + end - first]``) masks
        the prefix part and the own part, where a row's own part may start with a later row's prefix."""
        if mask is not self._mask:
            keep = mask[:, 0, 0, :]
            first = int(self.starts.min()) + self.length
            end = max(first, int(keep.any(0).nonzero().max()) + 1)
            slots = self.starts[:, None] + torch.arange(self.length, device=keep.device)
            tail = torch.arange(first, end, device=keep.device)
            own = keep[:, first:end] & (tail[None, :] >= (self.starts + self.length)[:, None])
            allowed = torch.cat([keep.gather(1, slots), own], dim=1)
            bias = torch.zeros(allowed.shape, device=keep.device).masked_fill(~allowed, float("-inf"))
            self._mask, self._split = mask, (first, end, bias[:, None, None, :])
        return self._split


def attach(cache, prefix_cache, pads: list[int]) -> None:
    """Mark a filled static ``cache`` whose row ``i`` holds the prefix (``prefix_cache``, batch size 1) at
    slots ``pads[i]`` onwards. Sliding-window layers are left alone (their slots roll over, so the prefix
    does not stay where it was put)."""
    rows = None
    for layer, prefix in zip(cache.layers, prefix_cache.layers):
        if getattr(layer, "is_sliding", False):
            continue
        rows = rows or _Rows(torch.tensor(pads, device=prefix.keys.device), prefix.keys.shape[2])
        # kept in fp32 (keys transposed for the scores): one copy costs little, and scores and sums in fp32
        # are what SDPA computes for bf16 too
        keys = prefix.keys[0].float().transpose(1, 2).contiguous()
        setattr(layer.keys, _ATTRIBUTE, (keys, prefix.values[0].float(), rows))


def attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None, **kwargs):
    """transformers' attention signature: shared-prefix attention for one new token per row, else SDPA."""
    shared = getattr(key, _ATTRIBUTE, None)
    plain = (
        shared is None
        or query.shape[2] != 1
        or not isinstance(attention_mask, torch.Tensor)
        or attention_mask.dtype != torch.bool
        or dropout != 0.0
        or key.shape[-1] != value.shape[-1]
        or any(kwargs.get(name) is not None for name in _SPECIAL)
    )
    if plain:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout, scaling, **kwargs)
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    prefix_keys, prefix_values, rows = shared
    first, end, bias = rows.split(attention_mask)
    out = shared_prefix_attention(
        query, key[:, :, first:end], value[:, :, first:end], bias, scale, prefix_keys, prefix_values
    )
    return out, None


def shared_prefix_attention(query, own_keys, own_values, bias, scale: float, prefix_keys, prefix_values):
    """Attention of one query per row (``query``: ``[rows, heads, 1, dim]``) over one shared prefix
    (``prefix_keys``: ``[kv_heads, dim, length]``, transposed; ``prefix_values``: ``[kv_heads, length, dim]``)
    and each row's own slots (``own_keys``/``own_values``: ``[rows, kv_heads, slots, dim]``); ``bias`` (0 or
    -inf, ``[rows, 1, 1, length + slots]``) masks both. Scores and sums in fp32; returns ``[rows, 1, heads, dim]``
    in the query's dtype."""
    rows, heads, _, dim = query.shape
    kv_heads, length = prefix_keys.shape[0], prefix_keys.shape[2]
    groups = heads // kv_heads
    own = query.float().reshape(rows, kv_heads, groups, dim) * scale
    # the prefix: every row's queries of one key/value head against its single copy
    grouped = own.transpose(0, 1).reshape(kv_heads, rows * groups, dim)
    prefix_scores = torch.bmm(grouped, prefix_keys).view(kv_heads, rows, groups, length).permute(1, 0, 2, 3)
    own_scores = torch.matmul(own, own_keys.float().transpose(2, 3))
    weights = torch.softmax(torch.cat([prefix_scores, own_scores], dim=-1) + bias, dim=-1)
    prefix_weights = weights[..., :length].permute(1, 0, 2, 3).reshape(kv_heads, rows * groups, length)
    out = torch.bmm(prefix_weights, prefix_values).view(kv_heads, rows, groups, dim).transpose(0, 1)
    out = out + torch.matmul(weights[..., length:], own_values.float())
    return out.reshape(rows, heads, 1, dim).transpose(1, 2).to(query.dtype).contiguous()
