"""Greedy decoding's next token without the whole fp32 output layer: an int8 screen, exact rescoring of its
top candidates, and a bound that certifies the pick (else the tokens it cannot rule out are scored too).

Why: a decode step multiplies every row's hidden state by the output layer, and for a large vocabulary
that layer is most of the bytes a step reads. Gemma 3 270M's is 640 x 262,144, 168M of its 268M
parameters: 672 MB in fp32, read at every step (180 ms of a batch of 8 on a 2-core AVX2 CPU). Greedy
decoding only needs the argmax. An int8 copy of the layer (per-row scales, `torch._weight_int8pack_mm`,
the weight-only int8 kernel torchao and gpt-fast use) reads a quarter of the bytes (57 ms), and the true
argmax was always among the screen's top 2 on Gemma's hidden states. The top `CANDIDATES` are then
scored exactly against the fp32 rows.

Why the pick is fp32's (certified, not hoped for): for every vocabulary row ``j`` the screen's error
``|exact_j - screen_j|`` is bounded from quantities known in advance (each row's rounding residual, the
norms of its int8 copy) and the hidden state's norms (`Screen._error`). If the best exact candidate beats
``screen_j + bound_j`` for every token outside the candidates, no other token can be fp32's argmax. A
row whose candidates are not certified gets exact scores for every token whose bound reaches its best
candidate (then it is certified), or its full fp32 logits if those are more than an eighth of the
vocabulary (on Gemma, GSM8K: no row needed more than its candidates; on few-shot word problems 5.2% did,
none the full layer). What remains is the order of fp32 sums: a candidate's exact score is one dot
product, the full layer's another order of the same sum, which can only split ties closer than ~1e-5.

The layer returns logits in which every token but those scored exactly sits at the dtype's minimum, so it is
only for greedy decoding (`screened` is given ``enabled`` only then): an argmax, or Gemma's monotonic
soft-capping and then an argmax, picks what the full layer would. The library path is the layer itself
(``generation.output_screen=false``).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

CANDIDATES = 64  # exact scores per row; 16 certified 98.0% of Gemma's positions, 64 99.8%, 256 100%
# a row its candidates do not certify gets exact scores for its contenders (the tokens whose bound reaches its
# best candidate) unless they are more than this share of the vocabulary; then the whole layer is cheaper
MAX_CONTENDERS_SHARE = 1 / 8
# below this the layer is a small part of a step: SmolLM2's 49,152 x 576 runs 22.6 ms in fp32, 10.4 ms screened
MIN_VOCABULARY = 32_768
_ATTRIBUTE = "_selftaught_argmax_screen"
_OUTPUT_ROUNDING = 2.0**-8  # the kernel's bf16 output: round to nearest, at most 2^-9 / (1 - 2^-9) of it
_SLACK = 1 + 2.0**-10  # the bound's own norms and sums are fp32 sums of up to ~10^4 terms, rounded
_ROWS_PER_CALL = 64  # a forward over many positions (no logits_to_keep) is screened in slices of rows
# `generate` settings that move logits after the layer, so that a token outside the candidates could win
_RERANKING = (
    ("repetition_penalty", 1.0),
    ("no_repeat_ngram_size", 0),
    ("min_length", 0),
    ("min_new_tokens", 0),
    ("bad_words_ids", None),
    ("sequence_bias", None),
    ("suppress_tokens", None),
    ("begin_suppress_tokens", None),
    ("num_beams", 1),
    ("penalty_alpha", None),
    ("exponential_decay_length_penalty", None),
    ("watermarking_config", None),
    ("dola_layers", None),
    ("guidance_scale", 1.0),
)


@dataclass
class Screen:
    """An fp32 output layer's int8 copy and the per-token terms of the screen's error bound."""

    weight: torch.Tensor  # [vocabulary, hidden], the layer's own (fp32)
    quantized: torch.Tensor  # int8, the same shape
    scales: torch.Tensor  # bf16 [vocabulary]: quantized * scales is the screen's copy
    residual_max: torch.Tensor  # max_k |w_jk - copy_jk|
    residual_norm: torch.Tensor  # ||w_j - copy_j||_2
    copy_norm: torch.Tensor  # ||copy_j||_2
    copy_l1: torch.Tensor  # ||copy_j||_1
    version: int  # the weight's version counter when the copy was made
    largest: tuple[float, ...] = ()  # each per-token term's largest value over the vocabulary
    counts: dict = field(default_factory=dict)  # rows decided per stage: candidates, contenders, full

    @classmethod
    def of(cls, weight: torch.Tensor, chunk_rows: int = 16_384) -> Screen:
        w = weight.detach()
        parts = [_quantize(w[start : start + chunk_rows]) for start in range(0, w.shape[0], chunk_rows)]
        quantized, scales, residual_max, residual_norm, copy_norm, copy_l1 = (torch.cat(p) for p in zip(*parts))
        largest = tuple(float(t.max()) for t in (residual_max, residual_norm, copy_norm, copy_l1))
        return cls(w, quantized, scales, residual_max, residual_norm, copy_norm, copy_l1, weight._version, largest)

    def _row_terms(self, hidden: torch.Tensor, rounded: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Per row: the hidden state's 1-norm, 2-norm, the 2-norm of its rounding to bf16, and the kernel's
        fp32 summation error factor (n * 2^-24 per term, Higham's gamma_n, times the largest input)."""
        h_l1, h_l2 = hidden.abs().sum(1, keepdim=True), hidden.norm(dim=1, keepdim=True)
        rounding = (hidden - rounded.float()).norm(dim=1, keepdim=True)
        n_u = (hidden.shape[1] + 1) * 2.0**-24  # the sum's n additions and (on ARM) the scale's product
        summing = n_u / (1 - n_u) * rounded.float().abs().amax(1, keepdim=True)
        return h_l1 * _SLACK, h_l2 * _SLACK, rounding * _SLACK, summing * _SLACK

    def _error(self, terms: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """A bound on ``|exact - screen|`` less the output's bf16 rounding (2^-8 of the screen, added by the
        caller): the int8 copy's residual times the hidden state (Hoelder: the smaller of max-norm x 1-norm and
        2-norm x 2-norm), the copy times the hidden state's rounding (Cauchy-Schwarz), the kernel's sum."""
        h_l1, h_l2, rounding, summing = terms
        error = torch.minimum(self.residual_max * h_l1, self.residual_norm * h_l2)
        return error.add_(self.copy_norm * rounding).add_(self.copy_l1 * summing)

    def _largest_error(self, terms: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """`_error`'s largest value over the vocabulary, bounded from each term's largest factor: ``[rows]``."""
        h_l1, h_l2, rounding, summing = terms
        r_max, r_norm, c_norm, c_l1 = self.largest
        return (torch.minimum(r_max * h_l1, r_norm * h_l2) + c_norm * rounding + c_l1 * summing).squeeze(1)

    def _certified(self, terms, screen, top, best) -> torch.Tensor:
        """Rows whose best exact candidate beats the best screened token outside the candidates plus the
        largest error over the vocabulary: a cheap check that most rows pass."""
        if top.shape[1] == screen.shape[1]:  # every token scored exactly
            return torch.ones_like(best, dtype=torch.bool)
        largest = screen.scatter(1, top, float("-inf")).amax(1)
        return best > largest + largest.abs() * _OUTPUT_ROUNDING + self._largest_error(terms)

    def _upper(self, terms, screen, top) -> torch.Tensor:
        """Every token's upper bound on its exact logit (``[rows, vocabulary]``), the candidates' at -inf."""
        error = self._error(terms)
        upper = screen.abs().mul_(_OUTPUT_ROUNDING).add_(screen).add_(error)
        return upper.scatter_(1, top, float("-inf"))

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """``[rows, vocabulary]`` logits whose argmax is the full layer's: the candidates' exact scores, every
        other token at the dtype's minimum. A row the candidates do not certify also gets the exact scores of
        every token whose bound reaches its best candidate (its contenders), or its full logits when those
        are more than `MAX_CONTENDERS_SHARE` of the vocabulary."""
        rounded = hidden.bfloat16()
        screen = torch._weight_int8pack_mm(rounded, self.quantized, self.scales).float()
        top = screen.topk(min(CANDIDATES, screen.shape[1]), dim=1).indices
        exact = torch.bmm(self.weight[top], hidden[:, :, None]).squeeze(2)  # [rows, candidates]
        best = exact.amax(1)
        terms = self._row_terms(hidden, rounded)  # computed once: both checks use them
        certified = self._certified(terms, screen, top, best)
        out = torch.full_like(screen, torch.finfo(screen.dtype).min).scatter_(1, top, exact)
        self._count("candidates", int(certified.sum()))  # and below, rows certified token by token
        rows = (~certified).nonzero().flatten()
        if len(rows) == 0:
            return out
        upper = self._upper(tuple(t[rows] for t in terms), screen[rows], top[rows])
        for row, bounds in zip(rows.tolist(), upper):
            contenders = (bounds >= best[row]).nonzero().flatten()
            if len(contenders) == 0:  # certified token by token
                self._count("candidates", 1)
            elif len(contenders) > MAX_CONTENDERS_SHARE * screen.shape[1]:
                out[row] = self.weight @ hidden[row]
                self._count("full", 1)
            else:
                out[row, contenders] = self.weight[contenders] @ hidden[row]
                self._count("contenders", 1)
        return out

    def _count(self, stage: str, rows: int) -> None:
        self.counts[stage] = self.counts.get(stage, 0) + rows


def _quantize(w: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Rows of ``w`` as int8 times a bf16 scale each, and the per-row terms of the screen's error bound."""
    scales = (w.abs().amax(1) / 127).clamp_min(torch.finfo(torch.bfloat16).tiny).bfloat16()
    quantized = torch.round(w / scales.float()[:, None]).clamp_(-127, 127).to(torch.int8)
    copy = quantized.float().mul_(scales.float()[:, None])
    residual = w - copy
    return quantized, scales, residual.abs().amax(1), residual.norm(dim=1), copy.norm(dim=1), copy.abs().sum(1)


def eligible(model) -> bool:
    """Whether ``model``'s output layer can be screened: a plain fp32 `nn.Linear` without bias on a CPU, with
    a vocabulary of `MIN_VOCABULARY` or more, a hidden size the kernel's vectors divide, a torch that has the
    int8 kernel, and no generation setting that changes the logits' order after the layer (`_RERANKING`)."""
    layer = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    settings = getattr(model, "generation_config", None)
    reranks = any(getattr(settings, name, neutral) not in (None, neutral) for name, neutral in _RERANKING)
    return (
        not reranks
        and type(layer) is nn.Linear
        and layer.bias is None
        and layer.weight.dtype == torch.float32
        and layer.weight.device.type == "cpu"
        and layer.weight.shape[0] >= MIN_VOCABULARY
        and layer.weight.shape[1] % 16 == 0  # the kernel's vector loops step 8 or 16 with no tail
        and hasattr(torch, "_weight_int8pack_mm")
    )


def screen_of(layer: nn.Linear) -> Screen:
    """The layer's screen, made once and again if its weight was replaced or changed in place since (an
    in-place change through ``weight.data`` does not count a version: generation models are not changed so,
    and adapters are merged before a screen is made)."""
    screen = getattr(layer, _ATTRIBUTE, None)
    if screen is None or screen.version != layer.weight._version or screen.weight.data_ptr() != layer.weight.data_ptr():
        screen = Screen.of(layer.weight)
        setattr(layer, _ATTRIBUTE, screen)
    return screen


@contextmanager
def screened(model, enabled: bool = True):
    """Within the block, ``model``'s output layer computes greedy decoding's argmax through its `Screen`
    (if ``enabled`` and `eligible`); yields the screen, or None where the layer runs as it is."""
    if not (enabled and eligible(model)):
        yield None
        return
    layer = model.get_output_embeddings()
    screen = screen_of(layer)
    if getattr(layer, "_selftaught_screening", False):  # nested: the outer block's patch stays
        yield screen
        return

    def forward(hidden: torch.Tensor) -> torch.Tensor:
        flat = hidden.reshape(-1, hidden.shape[-1]).float()
        parts = [screen.logits(flat[k : k + _ROWS_PER_CALL]) for k in range(0, flat.shape[0], _ROWS_PER_CALL)]
        out = parts[0] if len(parts) == 1 else torch.cat(parts)  # a decode step is one part: no copy
        return out.view(*hidden.shape[:-1], -1)

    previous = vars(layer).get("forward")  # an instance forward already there (accelerate's hooks set one)
    layer.forward, layer._selftaught_screening = forward, True  # the module's hooks (flat_output_layer's) still run
    try:
        yield screen
    finally:
        layer._selftaught_screening = False
        if previous is None:
            del layer.forward
        else:
            layer.forward = previous
