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
does not handle (prefill, soft-capping, a float mask) goes to transformers' own SDPA function unchanged.
The shared copy travels as an attribute of the cache layer's key tensor (`attach`), so it lives and dies
with that batch's cache.

Sliding-window layers (Gemma 3: 15 of 18, a window of 512) keep no prefix in place, since their slots roll
over. transformers' static sliding layer rolls all of them at every decoded token (a roll, an indexed
write and a copy back, of every row's keys and values); `RingWindowLayer` writes the new token over the
oldest slot instead, and `attention` turns the step's mask (made for the rolled order) to the ring's. Their
decoding attention is `window_attention`, matmuls over the window, which SDPA's CPU kernel is slower at.
"""

from __future__ import annotations

import torch
from transformers import AttentionInterface, StaticCache
from transformers.cache_utils import StaticSlidingWindowLayer
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

NAME = "selftaught_shared_prefix"
_ATTRIBUTE = "_selftaught_shared_prefix"
_RING = "_selftaught_ring"  # on a `RingWindowLayer`'s key tensor: the layer, for its head
# not implemented here; a sliding window is (the mask holds it, as for SDPA)
_SPECIAL = ("softcap", "s_aux", "sinks", "indices", "position_bias")
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


class RingWindowLayer(StaticSlidingWindowLayer):
    """transformers' static sliding-window layer, but a decoded token overwrites the oldest slot (``head``)
    in place rather than rolling the window: at every step its slots hold the window's tokens in an order
    rotated by ``head``. Anything else (a prefill, a window not yet full) unrotates and goes to the parent."""

    def __init__(self, max_cache_len: int, sliding_window: int, **kwargs):
        super().__init__(max_cache_len=max_cache_len, sliding_window=sliding_window, **kwargs)
        self.head = 0

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized or self.cumulative_length_int < self.max_cache_len or key_states.shape[-2] != 1:
            self._unrotate()
            return super().update(key_states, value_states, *args, **kwargs)
        self.keys[:, :, self.head] = key_states[:, :, 0]
        self.values[:, :, self.head] = value_states[:, :, 0]
        self.cumulative_length_int += 1
        self.head = (self.head + 1) % self.max_cache_len
        setattr(self.keys, _RING, self)  # each time: beam reordering or offloading may have replaced the tensor
        return self.keys, self.values

    def _unrotate(self) -> None:
        if self.head:
            self.keys.copy_(self.keys.roll(-self.head, dims=-2))
            self.values.copy_(self.values.roll(-self.head, dims=-2))
            self.head = 0

    def reset(self) -> None:
        super().reset()
        self.head = 0


def static_cache(config, max_cache_len: int) -> StaticCache:
    """A `StaticCache` for ``config``'s model whose sliding-window layers are `RingWindowLayer`s where the model
    runs `attention` (which turns their masks), else transformers' own."""
    cache = StaticCache(config=config, max_cache_len=max_cache_len)
    if getattr(config, "_attn_implementation", None) == NAME:
        for index, layer in enumerate(cache.layers):
            if type(layer) is StaticSlidingWindowLayer:  # its max_cache_len is already the window's
                cache.layers[index] = RingWindowLayer(max_cache_len=max_cache_len, sliding_window=layer.max_cache_len)
    return cache


def attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None, **kwargs):
    """transformers' attention signature: shared-prefix attention for one new token per row, window attention
    for one new token per row of a sliding-window layer, else SDPA."""
    ring = getattr(key, _RING, None)
    if ring is not None and ring.head and isinstance(attention_mask, torch.Tensor):
        attention_mask = attention_mask.roll(ring.head, dims=-1)  # made for the rolled order: slot i is i + head
    shared = getattr(key, _ATTRIBUTE, None)
    plain = (
        query.shape[2] != 1
        or not isinstance(attention_mask, torch.Tensor)
        or attention_mask.dtype != torch.bool
        or dropout != 0.0
        or key.shape[-1] != value.shape[-1]
        or any(kwargs.get(name) is not None for name in _SPECIAL)
    )
    if plain:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout, scaling, **kwargs)
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    if shared is None:
        bias = torch.zeros(attention_mask.shape, device=query.device).masked_fill_(~attention_mask, float("-inf"))
        return window_attention(query, key, value, bias, scale), None
    prefix_keys, prefix_values, rows = shared
    first, end, bias = rows.split(attention_mask)
    out = shared_prefix_attention(
        query, key[:, :, first:end], value[:, :, first:end], bias, scale, prefix_keys, prefix_values
    )
    return out, None


def window_attention(query, keys, values, bias, scale: float):
    """Attention of one query per row (``query``: ``[rows, heads, 1, dim]``) over the row's own slots
    (``keys``/``values``: ``[rows, kv_heads, slots, dim]``), ``bias`` (0 or -inf, ``[rows, 1, 1, slots]``)
    masking them; scores and sums in fp32, as SDPA's; returns ``[rows, 1, heads, dim]`` in the query's dtype."""
    rows, heads, _, dim = query.shape
    kv_heads = keys.shape[1]
    grouped = query.float().reshape(rows, kv_heads, heads // kv_heads, dim) * scale
    weights = torch.softmax(torch.matmul(grouped, keys.float().transpose(2, 3)) + bias, dim=-1)
    out = torch.matmul(weights, values.float())
    return out.reshape(rows, heads, 1, dim).transpose(1, 2).to(query.dtype).contiguous()


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
