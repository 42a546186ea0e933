import copy
import dataclasses
import warnings

import torch

from selftaught.config import TrainConfig
from selftaught.models.positions import make_scheme
from selftaught.training.sft import IGNORE, PadCollator, SftJob, add_lora, encode_pairs, train_sft

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
    log = train_sft(tiny_llama, features, char_tokenizer.pad_token_id, SftJob(tmp_path, 60, FAST, seed=0))
    assert log[-1]["loss"] < 0.7 * log[0]["loss"]
    changed = [k for k, v in tiny_llama.state_dict().items() if not torch.equal(v, before[k])]
    assert len(changed) == len(before)


def test_bf16_precision_autocasts_on_cpu_and_keeps_fp32_weights(char_tokenizer, tiny_llama, tmp_path):
    """train.precision=bf16 runs the matmuls in bf16 on CPU too; weights stay fp32 and still learn."""
    scheme = make_scheme("digit", char_tokenizer)
    pairs = [(f"{a}+{b}=", f"{a}{b}0{(a + b) % 10}{(a + b) // 10}|{a + b}") for a in range(10) for b in range(10)]
    features = encode_pairs(char_tokenizer, scheme, pairs)
    fp32_model = copy.deepcopy(tiny_llama)
    seen = set()
    hook = tiny_llama.model.layers[0].mlp.down_proj.register_forward_hook(lambda m, i, out: seen.add(out.dtype))
    bf16_job = SftJob(tmp_path / "bf16", 60, dataclasses.replace(FAST, precision="bf16"), seed=0)
    bf16 = train_sft(tiny_llama, features, char_tokenizer.pad_token_id, bf16_job)
    hook.remove()
    fp32_job = SftJob(tmp_path / "fp32", 60, dataclasses.replace(FAST, precision="fp32"), seed=0)
    fp32 = train_sft(fp32_model, features, char_tokenizer.pad_token_id, fp32_job)
    assert seen == {torch.bfloat16}
    assert {p.dtype for p in tiny_llama.parameters()} == {torch.float32}
    assert abs(bf16[0]["loss"] - fp32[0]["loss"]) < 0.02 * fp32[0]["loss"]  # same batch, bf16 rounding
    assert bf16[-1]["loss"] < 0.7 * bf16[0]["loss"]


def test_lora_wrapping_and_training_print_no_deprecation_warning_users_cannot_act_on(
    char_tokenizer, tiny_llama, tmp_path
):
    """PEFT reads transformers 5's deprecated ``is_gradient_checkpointing`` while wrapping: every LoRA run
    printed its FutureWarning. Other warnings still get through."""
    features = encode_pairs(char_tokenizer, make_scheme("digit", char_tokenizer), [("1+2=", "3")] * 4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = add_lora(tiny_llama, r=4, alpha=8, dropout=0.0, target_modules="all-linear")
        train_sft(model, features, char_tokenizer.pad_token_id, SftJob(tmp_path, 2, FAST, seed=0))
        warnings.warn("still shown", FutureWarning, stacklevel=1)
    messages = [str(w.message) for w in caught]
    assert not [m for m in messages if "is_gradient_checkpointing" in m]
    assert "still shown" in messages
