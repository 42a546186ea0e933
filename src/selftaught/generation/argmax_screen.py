"""Greedy decoding's next token without the whole fp32 output layer: a cheap copy of the layer screens the
vocabulary, its top candidates are rescored exactly, and a bound certifies the pick (else the tokens it
cannot rule out are scored too).

Why: a decode step multiplies every row's hidden state by the output layer, and for a large vocabulary
that layer is most of the bytes a step reads. Gemma 3 270M's is 640 x 262,144, 168M of its 268M
parameters: 672 MB in fp32, read at every step (173-193 ms of a batch of 8 on a 2-core AVX2 CPU). Greedy
decoding only needs the argmax. The screen is one of two copies (`KERNELS`):

* ``fp16``: the weights in fp16, multiplied by fp32 hidden states with fp32 sums (fbgemm's fp16 GEMM,
  torch's dynamic fp16 linear, on x86): 42 ms for Gemma's layer and a batch of 8, 6.8 ms for SmolLM2's
  (38 ms in fp32), and an error under 2^-11 of each product;
* ``int8``: per-row scales, `torch._weight_int8pack_mm` (the weight-only int8 kernel torchao and gpt-fast
  use) with bf16 hidden states: 60 ms, where fbgemm is missing (ARM).

The top `CANDIDATES` are then scored exactly against the fp32 rows.

Why the pick is fp32's (certified, not hoped for): for every vocabulary row ``j`` the screen's error
``|exact_j - screen_j|`` is bounded from quantities known in advance (each row's rounding residual, the
norms of its copy) and the hidden state's norms (`Screen._error`). If the best exact candidate beats
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

from selftaught.models import fp16_weights

KERNELS = ("fp16", "int8")  # the screen's copies of the layer, in order of preference (`preferred_kernel`)
CANDIDATES = 64  # exact scores per row; 16 certified 98.0% of Gemma's positions, 64 99.8%, 256 100% (int8)
# a row its candidates do not certify gets exact scores for its contenders (the tokens whose bound reaches its
# best candidate) unless they are more than this share of the vocabulary; then the whole layer is cheaper
MAX_CONTENDERS_SHARE = 1 / 8
# below this the layer is a small part of a step; SmolLM2's 49,152 x 576 at batch 8: 38 ms fp32, 6.8 ms fp16
MIN_VOCABULARY = 32_768
_ATTRIBUTE = "_selftaught_argmax_screen"
_INT8_OUTPUT_ROUNDING = 2.0**-8  # int8pack's bf16 output: round to nearest, at most 2^-9 / (1 - 2^-9) of it
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
    """An fp32 output layer's cheap copy (``kernel``: one of `KERNELS`) and the per-token terms of the
    screen's error bound."""

    weight: torch.Tensor  # [vocabulary, hidden], the layer's own (fp32)
    kernel: str
    packed: list  # fp16: fbgemm's packed blocks of rows, in order; int8: [int8 weight, bf16 scale per row]
    residual_max: torch.Tensor  # max_k |w_jk - copy_jk|
    residual_norm: torch.Tensor  # ||w_j - copy_j||_2
    copy_norm: torch.Tensor  # ||copy_j||_2
    copy_l1: torch.Tensor  # ||copy_j||_1
    version: int  # the weight's version counter when the copy was made
    largest: tuple[float, ...] = ()  # each per-token term's largest value over the vocabulary
    counts: dict = field(default_factory=dict)  # rows decided per stage: candidates, contenders, full

    @classmethod
    def of(cls, weight: torch.Tensor, kernel: str | None = None, chunk_rows: int = 65_536) -> Screen:
        """The screen of ``weight`` through ``kernel`` (`preferred_kernel` if None), made a block of
        ``chunk_rows`` rows at a time (each block's fp32 copy is a temporary)."""
        kernel = kernel or preferred_kernel(weight.shape[1])
        w, make = weight.detach(), {"fp16": _fp16_copy, "int8": _int8_copy}[kernel]
        parts = [make(w[start : start + chunk_rows]) for start in range(0, w.shape[0], chunk_rows)]
        packed = [p[0] for p in parts] if kernel == "fp16" else [torch.cat([p[0][k] for p in parts]) for k in (0, 1)]
        residual_max, residual_norm, copy_norm, copy_l1 = (torch.cat(t) for t in list(zip(*parts))[1:])
        largest = tuple(float(t.max()) for t in (residual_max, residual_norm, copy_norm, copy_l1))
        terms = (residual_max, residual_norm, copy_norm, copy_l1)
        return cls(w, kernel, packed, *terms, weight._version, largest)

    @property
    def output_rounding(self) -> float:
        """The kernel's output rounding, relative: int8pack returns bf16, fbgemm's fp16 GEMM fp32 sums."""
        return _INT8_OUTPUT_ROUNDING if self.kernel == "int8" else 0.0

    def approximate(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the screen's fp32 logits ``[rows, vocabulary]``, the hidden state as the kernel read it)."""
        if self.kernel == "fp16":
            parts = [torch.ops.quantized.linear_dynamic_fp16(hidden, block) for block in self.packed]
            return (parts[0] if len(parts) == 1 else torch.cat(parts, 1)), hidden
        rounded = hidden.bfloat16()
        return torch._weight_int8pack_mm(rounded, *self.packed).float(), rounded

    def _row_terms(self, hidden: torch.Tensor, rounded: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Per row: the hidden state's 1-norm, 2-norm, the 2-norm of its rounding by the kernel (to bf16 for
        int8, none for fp16), and the kernel's fp32 summation error factor (n * 2^-24 per term, Higham's
        gamma_n, times the largest input)."""
        h_l1, h_l2 = hidden.abs().sum(1, keepdim=True), hidden.norm(dim=1, keepdim=True)
        rounding = (hidden - rounded.float()).norm(dim=1, keepdim=True)
        n_u = (hidden.shape[1] + 1) * 2.0**-24  # the sum's n additions and (on ARM) the scale's product
        summing = n_u / (1 - n_u) * rounded.float().abs().amax(1, keepdim=True)
        return h_l1 * _SLACK, h_l2 * _SLACK, rounding * _SLACK, summing * _SLACK

    def _error(self, terms: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """A bound on ``|exact - screen|`` less the output's rounding (`output_rounding` of the screen, added
        by the caller): the copy's residual times the hidden state (Hoelder: the smaller of max-norm x 1-norm and
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
        return best > largest + largest.abs() * self.output_rounding + self._largest_error(terms)

    def _upper(self, terms, screen, top) -> torch.Tensor:
        """Every token's upper bound on its exact logit (``[rows, vocabulary]``), the candidates' at -inf."""
        error = self._error(terms)
        upper = screen.abs().mul_(self.output_rounding).add_(screen).add_(error)
        return upper.scatter_(1, top, float("-inf"))

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """``[rows, vocabulary]`` logits whose argmax is the full layer's: the candidates' exact scores, every
        other token at the dtype's minimum. A row the candidates do not certify also gets the exact scores of
        every token whose bound reaches its best candidate (its contenders), or its full logits when those
        are more than `MAX_CONTENDERS_SHARE` of the vocabulary."""
        screen, rounded = self.approximate(hidden)
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


def _terms(w: torch.Tensor, copy: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The per-row terms of the screen's error bound for rows ``w`` and the copy the kernel reads of them."""
    residual = w - copy
    return residual.abs().amax(1), residual.norm(dim=1), copy.norm(dim=1), copy.abs().sum(1)


def _fp16_copy(w: torch.Tensor) -> tuple:
    """Rows of ``w`` packed for fbgemm's fp16 GEMM; the terms come from the weights it unpacks, which are
    the ones it multiplies (out-of-range weights saturate to +-65,504 there and count in the residual). It
    packs a clone: fbgemm saturates the weights it is given in place, which would change the model's."""
    packed = torch.ops.quantized.linear_prepack_fp16(w.clone(), None)
    return packed, *_terms(w, torch.ops.quantized.linear_unpack_fp16(packed)[0].float())


def _int8_copy(w: torch.Tensor) -> tuple:
    """Rows of ``w`` as int8 times a bf16 scale each, and the per-row terms of the screen's error bound."""
    scales = (w.abs().amax(1) / 127).clamp_min(torch.finfo(torch.bfloat16).tiny).bfloat16()
    quantized = torch.round(w / scales.float()[:, None]).clamp_(-127, 127).to(torch.int8)
    return (quantized, scales), *_terms(w, quantized.float().mul_(scales.float()[:, None]))


def preferred_kernel(hidden_size: int) -> str | None:
    """The screen's kernel on this build of torch: fp16 where fbgemm runs (x86), else int8 where torch has
    the kernel and its vector loops (steps of 8 or 16, no tail) divide ``hidden_size``, else None."""
    if fp16_weights.available():
        return "fp16"
    if hasattr(torch, "_weight_int8pack_mm") and hidden_size % 16 == 0:
        return "int8"
    return None


def eligible(model) -> bool:
    """Whether ``model``'s output layer can be screened: a plain fp32 `nn.Linear` without bias on a CPU, with
    a vocabulary of `MIN_VOCABULARY` or more, a kernel for it (`preferred_kernel`), and no generation setting
    that changes the logits' order after the layer (`_RERANKING`)."""
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
        and preferred_kernel(layer.weight.shape[1]) is not None
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
