"""Position schemes: which position id each token gets.

Rotary attention only sees *differences* of position ids, so the ids decide what a token can find
by position. ``sequential`` is what every Hugging Face model does (0, 1, 2, ... after left padding).
``digit`` follows Abacus embeddings (McLeish et al. 2024): a digit's position comes from its index
within its number, so the token that writes column ``i`` of a sum finds column ``i`` of each operand at
the same relative offset whatever the length, and what is learned on 3 digits transfers to 10.

The compact arithmetic format (``tasks/arithmetic.py``) writes numbers least significant digit first::

    A + B (HINT) = a b c s C , a b c s C , ... | ANSWER

Each column ``i`` owns the ids ``8*i .. 8*i+7``, one slot per role::

    slot 0: the "=" or "," that opens step i      slot 1: digit i of A, and the step's a
    slot 2: digit i of B, and the step's b        slot 3: carry in       slot 4: sum digit
    slot 5: carry out                             slot 6: answer digit i  slot 7: hint digit i

so every dependency of the algorithm (read a_i, read b_i, chain the carry, copy s_i into the answer,
look at the hint) is one fixed relative offset. Training may space columns by a random ``period``
(>= 8) per example, the relative-position analogue of Abacus' random offsets: the model then meets
distances between columns far beyond those of the short sums it trains on, and learns to pick the
slot it needs by its offset alone. Generation always uses period 8. Separators outside a step get 0, "|" gets 6 (it
predicts answer digit 1, as answer digit i predicts digit i+1). Special tokens get 0 and leave the state
alone. The machine runs once over a whole sequence for training and one token at a time, batched,
while generating, so both see the same ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol

import torch

SCHEMES = ("digit", "sequential")
PERIOD = 8  # ids per column
SEG_A, SEG_B, SEG_HINT, SEG_STEPS, SEG_ANSWER = range(5)
# slot of a digit outside the steps, by segment (steps count their slot up from 0)
DIGIT_SLOT = torch.tensor([1, 2, 7, 0, 6])


class PositionScheme(Protocol):
    """What every scheme offers: ids for a whole block (training, a prompt batch), then one token at a time.

    ``ordinary`` schemes give the ids Hugging Face models derive from the attention mask themselves
    (what `generate` passes): they need no explicit ``position_ids`` and can share a prefix cache.
    """

    name: ClassVar[str]  # as saved in a model's selftaught.json
    ordinary: ClassVar[bool]

    def init_state(self, batch_size: int, device=None, period: torch.Tensor | None = None): ...

    def full(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, period: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, object]:
        """Positions for a whole [batch, time] block, and the state after its last token."""
        ...

    def step(self, token_ids: torch.Tensor, state) -> tuple[torch.Tensor, object]:
        """Positions of one new token per row, and the state after it."""
        ...


@dataclass(frozen=True)
class DigitPositions:
    """Token ids the column state machine reacts to (looked up once from the tokenizer)."""

    name: ClassVar[str] = "digit"
    ordinary: ClassVar[bool] = False  # ids follow the tokens' content, not the mask

    digit_ids: tuple[int, ...]
    plus_id: int  # "+"
    hint_id: int  # "("
    open_id: int  # "="
    step_id: int  # ","
    close_id: int  # "|"

    @classmethod
    def from_tokenizer(cls, tokenizer) -> DigitPositions:
        vocab = tokenizer.get_vocab()
        return cls(
            digit_ids=tuple(vocab[str(d)] for d in range(10)),
            plus_id=vocab["+"],
            hint_id=vocab["("],
            open_id=vocab["="],
            step_id=vocab[","],
            close_id=vocab["|"],
        )

    def init_state(self, batch_size: int, device=None, period: torch.Tensor | None = None) -> tuple:
        """(segment, column, slot, period) per row, all int64."""
        zeros = torch.zeros(batch_size, dtype=torch.long, device=device)
        if period is None:
            period = torch.full_like(zeros, PERIOD)
        return zeros.clone(), zeros.clone(), zeros.clone(), period.to(zeros)

    def step(self, token_ids: torch.Tensor, state) -> tuple[torch.Tensor, tuple]:
        """Advance the machine by one token per row; returns (position ids, new state)."""
        seg, col, slot, period = state
        dev = token_ids.device
        digit = torch.isin(token_ids, torch.tensor(self.digit_ids, device=dev))
        in_steps = seg == SEG_STEPS
        zero = torch.zeros_like(col)

        # digits: inside a step they take the next slot; elsewhere they open the next column
        step_digit = digit & in_steps
        num_digit = digit & ~in_steps
        new_slot = torch.where(step_digit, slot + 1, slot)
        new_col = torch.where(num_digit, col + 1, col)
        pos = torch.where(step_digit, period * col + slot + 1, zero)
        pos = torch.where(num_digit, period * (col + 1) + DIGIT_SLOT.to(dev)[seg], pos)

        # separators switch segment and restart the column count
        new_seg = seg
        for token, target in ((self.plus_id, SEG_B), (self.hint_id, SEG_HINT), (self.close_id, SEG_ANSWER)):
            hit = token_ids == token
            new_seg = torch.where(hit, torch.full_like(seg, target), new_seg)
            new_col = torch.where(hit, zero, new_col)
        opened = token_ids == self.open_id
        next_step = (token_ids == self.step_id) & in_steps
        new_seg = torch.where(opened, torch.full_like(seg, SEG_STEPS), new_seg)
        new_col = torch.where(opened, torch.ones_like(col), torch.where(next_step, col + 1, new_col))
        new_slot = torch.where(opened | next_step, zero, new_slot)
        pos = torch.where(opened | next_step, period * new_col, pos)
        pos = torch.where(token_ids == self.close_id, torch.full_like(pos, 6), pos)
        return pos, (new_seg, new_col, new_slot, period)

    def full(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, period: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, tuple]:
        """Positions for a whole [batch, time] block, and the state after its last token (padding is a
        special token: it leaves the state alone, so the mask is not needed)."""
        state = self.init_state(input_ids.shape[0], input_ids.device, period)
        columns = []
        for t in range(input_ids.shape[1]):
            pos, state = self.step(input_ids[:, t], state)
            columns.append(pos)
        return torch.stack(columns, dim=1), state


@dataclass(frozen=True)
class SequentialPositions:
    """Ordinary positions, counted over non-padding tokens exactly as `generate` does."""

    name: ClassVar[str] = "sequential"
    ordinary: ClassVar[bool] = True

    def init_state(self, batch_size: int, device=None, period: torch.Tensor | None = None) -> torch.Tensor:
        return torch.zeros(batch_size, dtype=torch.long, device=device)

    def full(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, period: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Counted over ``attention_mask`` (all ones if None); padding gets 1, as in `generate`."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        positions = attention_mask.long().cumsum(-1) - 1
        positions = positions.masked_fill(attention_mask == 0, 1)
        return positions, attention_mask.long().sum(-1)

    def step(self, token_ids: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return state, state + 1


def make_scheme(name: str, tokenizer) -> PositionScheme:
    if name == "digit":
        return DigitPositions.from_tokenizer(tokenizer)
    if name == "sequential":
        return SequentialPositions()
    raise ValueError(f"unknown position scheme {name!r}; choose one of {SCHEMES}")


def positions_for(scheme: PositionScheme, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids for a padded training or prompt batch under either scheme."""
    return scheme.full(input_ids, attention_mask)[0]
