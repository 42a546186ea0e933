"""Reusing the few-shot prefix: encode it once, reuse its KV cache for every batch of a phase.

Every prompt of a phase starts with the same few-shot examples (~1k tokens for the STaR GSM8K prompt),
and prefilling them again for each question is most of a short generation's cost. The shared prefix is
found on token ids (the longest common prefix of the tokenized prompts, so the ids are exactly those of
the full prompts whatever the tokenizer merges), encoded once with batch size 1, and its cache is
copied into every row of each batch's preallocated `StaticCache` (transformers documents this "prefix
cache" reuse). Rows are left-padded as `generate` pads them, so the prefix starts after each row's
pads (`SharedPrefix.static` shifts it into place); position ids come from the attention mask as before,
so each row sees the ids it would see alone, and greedy output is the same as without the cache (tested).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
from transformers import DynamicCache, StaticCache

from selftaught.generation import shared_attention

MIN_PREFIX_TOKENS = 32  # shorter shared prefixes are not worth a cache


def common_prefix_length(rows: list[list[int]]) -> int:
    """Tokens all rows share at their start, leaving each row at least one token of its own.

    >>> common_prefix_length([[1, 2, 3, 4], [1, 2, 3, 5], [1, 2, 9]])
    2
    >>> common_prefix_length([[1, 2], [1, 2]])
    1
    """
    if not rows:
        return 0
    first, limit = rows[0], min(len(r) for r in rows) - 1
    length = 0
    while length < limit and all(r[length] == first[length] for r in rows):
        length += 1
    return max(length, 0)


@dataclass
class SharedPrefix:
    ids: list[int]
    cache: DynamicCache  # batch size 1

    def static(self, config, pads: list[int], max_cache_len: int) -> StaticCache:
        """The prefix in a preallocated cache of ``max_cache_len`` positions, one row per entry of ``pads``.

        The batch is ordinarily left-padded (as `generate` pads it): row ``i`` holds ``pads[i]`` pad
        slots, then the prefix, then its own question. The cache covers the first ``len(ids)`` slots, so
        row ``i`` gets its pads and the first ``len(ids) - pads[i]`` prefix tokens; the prefix tokens that
        slide past that boundary are recomputed with the row's question. Why not pad between the prefix
        and the question (which would let every row take the whole prefix): a sliding-window layer
        (Gemma 3: 512 slots) counts pad slots in its window, so pads inside the last 512 slots hide real
        tokens from it and change the output; pads at the start lie outside it, as in `generate`.

        Why static: a `DynamicCache` concatenates every layer's keys and values at each new token, so a
        decode step copies the whole 1k+ token cache (and, on CPU, allocates tens of MB that malloc may
        hand back to the OS each time); measured on the GSM8K-shaped benchmark, the copies were most of
        a decode step. A static cache writes one position in place.

        The cache is marked for `shared_attention`, which reads one copy of the prefix per decode step
        instead of every row's.
        """
        cache = shared_attention.static_cache(config, max_cache_len)
        length = len(self.ids)
        for index, layer in enumerate(self.cache.layers):
            keys, values = (torch.cat([_shifted(t, pad, length) for pad in pads]) for t in (layer.keys, layer.values))
            cache.update(keys, values, index)
        shared_attention.attach(cache, self.cache, pads)
        return cache


def _shifted(states: torch.Tensor, pad: int, length: int) -> torch.Tensor:
    """One row's first ``length`` cache slots: ``pad`` zero slots (masked out), then the prefix's start."""
    pad = min(pad, length)
    if pad == 0:
        return states
    zeros = states.new_zeros(*states.shape[:2], pad, states.shape[3])
    return torch.cat([zeros, states[:, :, : length - pad]], dim=2)


def batch_cache(config, prefix: SharedPrefix | None, pads: list[int], max_cache_len: int) -> StaticCache:
    """A preallocated cache for one generation batch, holding the shared prefix if there is one. Short
    prompts gain nothing from it but lose nothing either (embedded arithmetic, 1,000 test prompts:
    2.9-3.3 s static vs 3.1-3.6 s dynamic), so every batch gets one."""
    if prefix is not None:
        return prefix.static(config, pads, max_cache_len)
    return shared_attention.static_cache(config, max_cache_len)


def keeps_logits(model) -> bool:
    """Whether ``model.forward`` can compute the logits of the last positions only (``logits_to_keep``)."""
    return "logits_to_keep" in inspect.signature(model.forward).parameters


@torch.inference_mode()
def encode_prefix(model, ids: list[int], scheme) -> SharedPrefix:
    device = next(model.parameters()).device
    input_ids = torch.tensor([ids], device=device)
    positions, _ = scheme.full(input_ids)
    kwargs = {"logits_to_keep": 1} if keeps_logits(model) else {}  # a 262k vocabulary x 1k positions is 1 GB
    out = model(input_ids=input_ids, position_ids=positions, past_key_values=DynamicCache(), use_cache=True, **kwargs)
    return SharedPrefix(list(ids), out.past_key_values)


def padded_batch(rows: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """(input ids, attention mask, pads per row), left-padded to the longest row."""
    width = max(len(r) for r in rows)
    pads = [width - len(row) for row in rows]
    ids = [[pad_id] * gap + row for gap, row in zip(pads, rows)]
    mask = [[0] * gap + [1] * len(row) for gap, row in zip(pads, rows)]
    return torch.tensor(ids, device=device), torch.tensor(mask, device=device), pads


class PrefixStore:
    """The last shared prefix encoded, reused while the phase's prompts keep sharing it."""

    def __init__(self, enabled: bool = True):
        self.enabled, self.current = enabled, None

    def get(self, model, scheme, rows: list[list[int]]) -> SharedPrefix | None:
        length = common_prefix_length(rows)
        if not self.enabled or length < MIN_PREFIX_TOKENS:
            return None
        known = self.current
        if known is not None and len(known.ids) <= length and rows[0][: len(known.ids)] == known.ids:
            return known  # an earlier call's prefix (the previous chunk of the phase): still shared
        self.current = encode_prefix(model, rows[0][:length], scheme)
        return self.current
