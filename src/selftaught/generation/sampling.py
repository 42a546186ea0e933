"""How completions are drawn: one value for every backend (`Sampling`).

The settings travel together from the config (or the command line) through a `ChunkJob`, a generator's
``complete`` and the sampler or vLLM. Token budgets are not among them: they are per prompt
(``task.max_new_tokens(example)``) and travel with the prompts.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from selftaught.config import GenerationConfig
from selftaught.tasks.stops import NO_STOP, Stop


@dataclass(frozen=True)
class Sampling:
    """``num_samples`` completions per prompt at ``temperature`` (0 = greedy) with nucleus ``top_p``,
    drawn from ``seed``, each ending where ``stop`` says."""

    num_samples: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    stop: Stop = NO_STOP

    @classmethod
    def from_config(
        cls,
        generation: GenerationConfig,
        seed: int,
        stop: Stop = NO_STOP,
        *,
        greedy: bool = False,
        num_samples: int | None = None,
        temperature: float | None = None,
    ) -> Sampling:
        """``generation``'s settings (``num_samples`` / ``temperature`` override them; ``greedy``: one
        completion at temperature 0)."""
        if greedy:
            num_samples, temperature = 1, 0.0
        return cls(
            num_samples=generation.num_samples if num_samples is None else num_samples,
            temperature=generation.temperature if temperature is None else temperature,
            top_p=generation.top_p,
            seed=seed,
            stop=stop,
        )

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0

    def reseeded(self, offset: int) -> Sampling:
        """The same settings drawn from ``seed + offset`` (a chunk's or a batch's own seed)."""
        return replace(self, seed=self.seed + offset)


GREEDY = Sampling()
