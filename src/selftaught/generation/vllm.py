"""vLLM generation (GPU). Imported only when ``generation.backend=vllm`` is chosen."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from selftaught.config import ConfigError, ModelConfig
from selftaught.generation.sampling import GREEDY, Sampling
from selftaught.samples import Completion
from selftaught.tasks.stops import Stop

INSTALL_HINT = "generation.backend=vllm needs vLLM: pip install 'selftaught[vllm]' (Linux + CUDA GPU)"


def import_vllm():
    try:
        import vllm
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    return vllm


def merged_weights(path: str | Path, config: ModelConfig) -> str:
    """vLLM loads plain weights: merge a LoRA adapter once into ``path/merged`` and return that."""
    path = Path(str(path))
    if not (path / "adapter_config.json").is_file():
        return str(path)
    merged = path / "merged"
    if not (merged / "config.json").is_file():
        from selftaught.common.atomic import atomic_save_dir
        from selftaught.models import load_model, save_model

        lm = load_model(path, config)
        atomic_save_dir(merged, lambda tmp: save_model(lm.model, lm.tokenizer, "sequential", tmp))
    return str(merged)


class VLLMGenerator:
    """Same ``complete`` contract as `Generator`, with prompts already rendered by ``render``.

    vLLM stops at the task's stop strings itself (``SamplingParams.stop``) and at the model's EOS and
    end-of-turn ids; a stop's ``end_pattern`` (a regex, which vLLM cannot take) is applied by cutting
    the returned text, so a few tokens past it may be generated before a stop string or EOS ends the row.
    Automatic prefix caching stays on (vLLM's default), so a phase's shared few-shot prefix is computed once.
    """

    def __init__(
        self,
        path: str | Path,
        config: ModelConfig,
        render: Callable[[str], str],
        seed: int = 0,
        chat: bool = False,
        tensor_parallel: int = 1,
    ):
        vllm = import_vllm()
        self.vllm, self.render, self.chat = vllm, render, chat
        self.tokens_generated = 0
        self.llm = vllm.LLM(
            model=merged_weights(path, config),
            trust_remote_code=config.trust_remote_code,
            dtype="bfloat16" if config.dtype == "auto" else config.dtype,
            seed=seed,
            enable_prefix_caching=True,
            tensor_parallel_size=tensor_parallel,
            # inside a Ray actor, vLLM's default (a Ray executor) would ask the cluster for more GPUs than
            # the actor holds; its own processes use the actor's
            distributed_executor_backend="mp" if tensor_parallel > 1 else None,
        )

    def complete(
        self,
        prompts: list[str],
        max_new_tokens: list[int],
        sampling: Sampling = GREEDY,
        on_batch: Callable[[int], None] | None = None,
    ) -> list[list[Completion]]:
        stop: Stop = sampling.stop.for_chat(self.chat)
        params = [
            self.vllm.SamplingParams(
                n=sampling.num_samples,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                max_tokens=budget,
                seed=sampling.seed + i,
                stop=list(stop.strings) or None,
            )
            for i, budget in enumerate(max_new_tokens)
        ]
        outputs = self.llm.generate([self.render(p) for p in prompts], params, use_tqdm=False)
        self.tokens_generated += sum(len(choice.token_ids) for out in outputs for choice in out.outputs)
        if on_batch:
            on_batch(len(prompts) * sampling.num_samples)
        return [[_completion(choice, stop) for choice in out.outputs] for out in outputs]


def _completion(choice, stop: Stop) -> Completion:
    """vLLM's output cut at the stop; ``truncated`` when vLLM ended it for its length (``finish_reason``
    "length", not "stop") and the stop's ``end_pattern`` did not end it either."""
    cut = getattr(choice, "finish_reason", None) == "length" and stop.find_end(choice.text) is None
    return Completion(stop.cut(choice.text), truncated=cut)
