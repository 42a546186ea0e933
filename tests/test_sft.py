import torch

from selftaught.config import TrainConfig
from selftaught.models.positions import make_scheme
from selftaught.training.sft import IGNORE, PadCollator, encode_pairs, train_sft

FAST = TrainConfig(batch_size=16, learning_rate=3e-3, save_every_steps=0)


def test_prompt_tokens_are_masked(char_tokenizer):
    scheme = make_scheme("digit", char_tokenizer)
    pairs = [("21+43=", "24060,13040|64"), ("5+7(21)=", "57021|21")]
    features = encode_pairs(char_tokenizer, scheme, pairs)
    for (prompt, completion), feat in zip(pairs, features):
        n_prompt = 1 + len(prompt)  # BOS + characters
        assert feat["labels"][:n_prompt] == [IGNORE] * n_prompt
        learned = feat["labels"][n_prompt:]
        assert learned[-1] == char_tokenizer.eos_token_id
        assert char_tokenizer.decode(learned[:-1]) == completion
        assert len(feat["position_ids"]) == len(feat["input_ids"])
    batch = PadCollator(char_tokenizer.pad_token_id)(features)
    assert batch["input_ids"].shape == batch["labels"].shape == batch["position_ids"].shape
    assert (batch["labels"][batch["attention_mask"] == 0] == IGNORE).all()


def test_training_changes_parameters_and_lowers_loss(char_tokenizer, tiny_llama, tmp_path):
    scheme = make_scheme("digit", char_tokenizer)
    pairs = [(f"{a}+{b}=", f"{a}{b}0{(a + b) % 10}{(a + b) // 10}|{a + b}"[::1]) for a in range(10) for b in range(10)]
    features = encode_pairs(char_tokenizer, scheme, pairs)
    before = {k: v.clone() for k, v in tiny_llama.state_dict().items()}
    log = train_sft(tiny_llama, features, char_tokenizer.pad_token_id, tmp_path, 60, FAST, seed=0)
    assert log[-1]["loss"] < 0.7 * log[0]["loss"]
    changed = [k for k, v in tiny_llama.state_dict().items() if not torch.equal(v, before[k])]
    assert len(changed) == len(before)
