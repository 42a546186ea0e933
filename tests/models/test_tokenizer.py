from transformers import AutoTokenizer

from selftaught.models.embedded import build_char_tokenizer


def test_char_tokenizer_saves_and_loads_as_hf(tmp_path):
    tok = build_char_tokenizer()
    tok.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    text = "321+7654(0964)=37001,26190|0964\nInput: 6 2 4"
    ids = loaded(text)["input_ids"]
    assert ids[0] == loaded.bos_token_id and len(ids) == len(text) + 1
    assert loaded.decode(ids, skip_special_tokens=True) == text
    assert ids == tok(text)["input_ids"]
    assert loaded.padding_side == "left"
