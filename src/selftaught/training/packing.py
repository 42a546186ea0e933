"""Batches without padding waste: a step's examples packed into rows, each attending only to itself.

A padded batch of STaR records wastes compute on padding: rationales for a 1-digit and a 10-digit sum
differ several-fold in length (40% of the default run's batch tokens were padding). `PackCollator`
puts the *same* examples (the sampler's batch, so the optimizer sees what it saw before) into as few
rows as fit the longest one (first-fit decreasing) and passes a block-diagonal causal 4D mask, so no
token sees another example. Each example keeps its own position ids. The loss is unchanged in meaning:
prompt tokens stay masked, and every example's first label is masked so the previous example's last
token never predicts it (a padded batch never predicts a first token either); the mean is over the
same completion tokens.

Why not only transformers' `DataCollatorWithFlattening`: it puts the whole batch in one row and marks
sequence starts by a reset of sequential position ids. That is right with a varlen kernel (flash
attention), which skips the cross-example blocks; on CPU or plain SDPA the mask is materialised over
the whole row, so attention costs (batch tokens)^2, and a digit-position model's ids do not count up
by one. `collator_for` picks it where it is the better path (flash attention, ordinary positions) and
`benchmarks/speed.py` measures all three side by side.
"""

from __future__ import annotations

import torch

IGNORE = -100
VARLEN_KERNELS = ("flash_attention_2", "flash_attention_3")


def pack_rows(lengths: list[int]) -> list[list[int]]:
    """Indices of examples per row: first-fit decreasing into rows as wide as the longest example.

    >>> pack_rows([5, 2, 3, 1])
    [[0], [2, 1], [3]]
    >>> pack_rows([4, 4, 4])
    [[0], [1], [2]]
    """
    width = max(lengths)
    rows: list[list[int]] = []
    free: list[int] = []
    for index in sorted(range(len(lengths)), key=lambda k: (-lengths[k], k)):
        for row, room in enumerate(free):
            if lengths[index] <= room:
                rows[row].append(index)
                free[row] -= lengths[index]
                break
        else:
            rows.append([index])
            free.append(width - lengths[index])
    return rows


class PackCollator:
    """Packs a batch into rows with a block-diagonal causal mask (bool for SDPA, additive for eager)."""

    def __init__(self, pad_id: int, additive_mask: bool = False):
        self.pad_id, self.additive_mask = pad_id, additive_mask

    def __call__(self, features: list[dict]) -> dict:
        lengths = [len(f["input_ids"]) for f in features]
        rows = pack_rows(lengths)
        width = max(lengths)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
        positions = torch.zeros((len(rows), width), dtype=torch.long)
        segment = torch.full((len(rows), width), -1, dtype=torch.long)  # which example; -1 = padding
        for r, members in enumerate(rows):
            start = 0
            for index in members:
                f, n = features[index], lengths[index]
                ids[r, start : start + n] = torch.tensor(f["input_ids"])
                labels[r, start : start + n] = torch.tensor(f["labels"])
                labels[r, start] = IGNORE  # never a target: it has no previous token of its own
                pos = f.get("position_ids")
                positions[r, start : start + n] = torch.tensor(pos) if pos is not None else torch.arange(n)
                segment[r, start : start + n] = index
                start += n
        same = segment[:, :, None] == segment[:, None, :]
        causal = torch.ones(width, width, dtype=torch.bool).tril()
        # padding attends to itself only, so no softmax row is empty (its outputs carry no loss)
        allowed = (same & causal & (segment[:, :, None] >= 0)) | torch.eye(width, dtype=torch.bool)
        mask = allowed[:, None]
        if self.additive_mask:
            mask = torch.zeros(mask.shape).masked_fill(~mask, torch.finfo(torch.float32).min)
        return {"input_ids": ids, "labels": labels, "position_ids": positions, "attention_mask": mask}


def padding_share(features: list[dict], batch_size: int) -> dict:
    """Real vs batch tokens for consecutive batches padded (one row each) and packed (`pack_rows`)."""
    real = padded = packed = 0
    for start in range(0, len(features), batch_size):
        lengths = [len(f["input_ids"]) for f in features[start : start + batch_size]]
        real += sum(lengths)
        padded += max(lengths) * len(lengths)
        packed += max(lengths) * len(pack_rows(lengths))
    return {"real_tokens": real, "padded_share": 1 - real / padded, "packed_share": 1 - real / packed}
