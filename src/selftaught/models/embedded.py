"""The embedded default model: a tiny Llama with a character-level tokenizer.

Both are ordinary Hugging Face objects: the tokenizer is a `tokenizers` WordLevel model over single
characters wrapped in `PreTrainedTokenizerFast`, and the model is `LlamaForCausalLM` from a config,
so `save_pretrained` / `from_pretrained` round-trip them like any hub model. The one addition is
`selftaught.json` beside the weights, naming the position scheme the model was trained with.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, pre_tokenizers, processors
from tokenizers.models import WordLevel
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<unk>")
# printable ASCII covers both arithmetic formats and any few-shot text a user types by hand
CHARACTERS = tuple(dict.fromkeys(string.digits + string.ascii_letters + string.punctuation + " \n"))
META_FILE = "selftaught.json"


def build_char_tokenizer() -> PreTrainedTokenizerFast:
    """A character-level tokenizer that prepends BOS and saves as a standard HF tokenizer."""
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS + CHARACTERS)}
    core = Tokenizer(WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    core.decoder = decoders.Fuse()
    core.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", vocab["<bos>"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )


def build_tiny_llama(
    tokenizer, num_layers: int, hidden_size: int, num_heads: int, max_positions: int, seed: int
) -> LlamaForCausalLM:
    """A randomly initialised LlamaForCausalLM sized for CPU training in minutes."""
    import torch

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=3 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


def save_meta(path: str | Path, positions: str, base_model: str | None = None) -> None:
    meta = {"positions": positions, **({"base_model": str(base_model)} if base_model else {})}
    (Path(path) / META_FILE).write_text(json.dumps(meta) + "\n")


def load_meta(path: str | Path) -> dict:
    """Position scheme of a saved model; models from elsewhere use ordinary positions."""
    meta = Path(path) / META_FILE
    if not meta.is_file():
        return {"positions": "sequential"}
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ValueError(f"{meta}: not valid JSON ({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict) or data.get("positions") not in ("digit", "sequential"):
        raise ValueError(f'{meta}: expected {{"positions": "digit" | "sequential"}}')
    return data
