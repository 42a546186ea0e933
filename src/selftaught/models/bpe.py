"""A byte-level BPE tokenizer trained here (Hugging Face `tokenizers`), for embedded models of text tasks.

Numbers are split into single digits before BPE merges (as Llama's and Qwen's tokenizers do), so
``285`` is always ``2 8 5`` and arithmetic in a rationale is done digit by digit; words merge as usual.
The result is a `PreTrainedTokenizerFast`: ``save_pretrained`` / ``AutoTokenizer.from_pretrained``
round-trip it like any hub tokenizer.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

EOS, PAD = "<|endoftext|>", "<pad>"


def train_bpe_tokenizer(corpus: Iterable[str], vocab_size: int = 512) -> PreTrainedTokenizerFast:
    """A BPE tokenizer of at most ``vocab_size`` tokens learned from ``corpus``.

    >>> tok = train_bpe_tokenizer(["Ann has 12 pens. 12+7 = <<12+7=19>>19"] * 20, vocab_size=300)
    >>> [tok.decode([i]) for i in tok("285")["input_ids"]]
    ['2', '8', '5']
    >>> tok.decode(tok("Ann has 12 pens.")["input_ids"])
    'Ann has 12 pens.'
    """
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[EOS, PAD], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    core.train_from_iterator(corpus, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=core, eos_token=EOS, pad_token=PAD, bos_token=EOS)
