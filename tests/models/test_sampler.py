import torch

from selftaught.generation import Generator
from selftaught.generation.sampler import hf_generate_batch, sample_batch
from selftaught.generation.sampling import Sampling
from selftaught.models import LoadedModel
from selftaught.models.positions import make_scheme

PROMPTS = ["12+34=", "1+1=", "hello world, this is longer", "9"]


def test_greedy_sampler_equals_generate(char_tokenizer, tiny_llama):
    scheme = make_scheme("sequential", char_tokenizer)
    ours = sample_batch(tiny_llama, char_tokenizer, scheme, PROMPTS, max_new_tokens=24)
    theirs = hf_generate_batch(tiny_llama, char_tokenizer, PROMPTS, max_new_tokens=24)
    assert ours == theirs
    assert any(len(text) > 0 for text in ours)


def test_sampler_stops_at_eos(char_tokenizer, tiny_llama):
    scheme = make_scheme("sequential", char_tokenizer)
    with torch.no_grad():  # make EOS overwhelmingly likely after the first generated token
        tiny_llama.lm_head.weight[char_tokenizer.eos_token_id] *= 0
        tiny_llama.lm_head.bias = None
    out = sample_batch(tiny_llama, char_tokenizer, scheme, PROMPTS, max_new_tokens=10)
    assert all("<eos>" not in text for text in out)


def test_generator_keeps_prompt_order_and_samples(char_tokenizer, tiny_llama):
    scheme = make_scheme("digit", char_tokenizer)
    gen = Generator(LoadedModel(tiny_llama, char_tokenizer, scheme, chat=False), backend="auto", batch_size=3)
    assert gen.backend == "sampler"
    greedy = gen.complete(PROMPTS, [5, 9, 3, 7])
    for prompt, budget, (text,) in zip(PROMPTS, [5, 9, 3, 7], greedy):
        alone = sample_batch(tiny_llama, char_tokenizer, scheme, [prompt], budget)
        assert text == alone[0][: len(text)]
    sampling = Sampling(num_samples=3, temperature=1.0, seed=1)
    sampled = gen.complete(PROMPTS, [8] * 4, sampling)
    assert [len(s) for s in sampled] == [3] * 4
    again = gen.complete(PROMPTS, [8] * 4, sampling)
    assert sampled == again


def test_sampling_from_config():
    from selftaught.config import GenerationConfig
    from selftaught.tasks.stops import Stop

    g = GenerationConfig(num_samples=4, temperature=0.7, top_p=0.9)
    stop = Stop(("\nQ:",))
    assert Sampling.from_config(g, 3, stop) == Sampling(4, 0.7, 0.9, 3, stop)
    assert Sampling.from_config(g, 3, greedy=True) == Sampling(1, 0.0, 0.9, 3)
    assert Sampling.from_config(g, 3, num_samples=2, temperature=1.0).reseeded(5) == Sampling(2, 1.0, 0.9, 8)
