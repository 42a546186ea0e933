"""model.system_prompt: a chat model's system message, kept whatever the chat template does with the
system role: rendered where the template supports it, moved into the user turn where it raises (Gemma's
templates) or drops it silently."""

from __future__ import annotations

import pytest

from selftaught.config import ConfigError, config_from_dict
from selftaught.models import LoadedModel, render_prompt
from tests.tiny_hf import CHATML, build_bpe_tokenizer

RAISES = (
    "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}<start_of_turn>{{ m['role'] }}\n{{ m['content'] }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
DROPS = (
    "{% for m in messages %}{% if m['role'] != 'system' %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
SYSTEM = "You are a careful math tutor. End with 'The answer is N.'"


@pytest.fixture(scope="module")
def tokenizer():
    return build_bpe_tokenizer(["a small corpus for a tiny tokenizer"], chat=True, vocab_size=300)


def test_a_template_with_a_system_role_renders_it_as_a_system_turn(tokenizer):
    tokenizer.chat_template = CHATML
    text = render_prompt(tokenizer, True, "Q: 2+2?", SYSTEM)
    assert text.startswith(f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\nQ: 2+2?")
    assert render_prompt(tokenizer, True, "Q: 2+2?") == "<|im_start|>user\nQ: 2+2?<|im_end|>\n<|im_start|>assistant\n"


@pytest.mark.parametrize("template", [RAISES, DROPS], ids=["raises", "drops"])
def test_a_template_without_a_system_role_gets_it_in_the_user_turn(tokenizer, template):
    tokenizer.chat_template = template
    text = render_prompt(tokenizer, True, "Q: 2+2?", SYSTEM)
    assert f"{SYSTEM}\n\nQ: 2+2?" in text  # once, before the question, inside the user turn
    assert text.count(SYSTEM) == 1


def test_completion_models_and_the_loaded_model_use_it_as_configured(tokenizer):
    tokenizer.chat_template = CHATML
    assert render_prompt(tokenizer, False, "Q: 2+2?", SYSTEM) == "Q: 2+2?"  # few-shot prompts stay as they are
    lm = LoadedModel(None, tokenizer, None, chat=True, system=SYSTEM)
    assert SYSTEM in lm.render("Q: 2+2?")
    assert config_from_dict({"model": {"system_prompt": SYSTEM}}).model.system_prompt == SYSTEM
    with pytest.raises(ConfigError, match="model.system_prompt must be str"):
        config_from_dict({"model": {"system_prompt": 3}})
