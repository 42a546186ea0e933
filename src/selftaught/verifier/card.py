"""The verifier checkpoint's model card (README.md, huggingface_hub `ModelCard`): what it was trained on,
how it scores, and how to use it."""

from __future__ import annotations

from pathlib import Path

from selftaught.common.atomic import atomic_write_text
from selftaught.common.versions import library_versions
from selftaught.config import Config
from selftaught.hub.modelcard import task_description
from selftaught.verifier.score import VerifierInfo


def render_verifier_card(config: Config, info: VerifierInfo, counts: dict, log: list[dict]) -> str:
    from huggingface_hub import ModelCard, ModelCardData

    v = config.verifier
    last = log[-1] if log else {}
    accuracy = last.get("rewards/accuracies")
    by_iteration = ", ".join(f"iteration {n}: {c}" for n, c in counts["pairs_by_iteration"].items())
    data = ModelCardData(
        library_name="transformers",
        tags=["selftaught", "v-star", "verifier", "dpo", "trl", config.task.name],
        model_name=f"selftaught-{config.task.name}-verifier",
    )
    body = f"""
# selftaught V-STaR verifier: {config.task.name}

A verifier trained with DPO ([TRL](https://github.com/huggingface/trl)'s `DPOTrainer`) on pairs of right and
wrong solutions that the STaR generator wrote for the same training question
([V-STaR](https://arxiv.org/abs/2402.06457), Hosseini et al. 2024).

- **Started from (reference model):** `{info.reference}`
- **Task and data:** {task_description(config)}
- **Pairs:** {counts["num_pairs"]} over {counts["num_questions"]} questions ({by_iteration}); a right answer
  with a failed step check counts as wrong
- **Training:** {v.steps} steps of {v.batch_size} pairs, learning rate {v.learning_rate}, beta {v.beta},
  loss `{v.loss}`, {"LoRA (merged)" if v.lora else "all weights"}
- **Last logged pair accuracy (train):** {f"{float(accuracy):.1%}" if accuracy is not None else "n/a"}

## Score

The score of a solution y to question x is DPO's implicit reward of the response alone,
`beta * (log p_verifier(y | x) - log p_reference(y | x))`, summed over the solution's tokens and its EOS;
the prompt is the task's unhinted prompt{" with its few-shot prefix" if info.few_shot else ""}.

## How to use

```bash
selftaught eval GENERATOR --samples 16 --verifier PATH/TO/THIS/FOLDER
```

prints pass@1, maj@k, pass@k and Verifier@k (best of k by this score) for k = 1, 2, 4, ..., 16.

## Versions

{", ".join(f"{k} {v}" for k, v in library_versions().items())}
"""
    return ModelCard(f"---\n{data.to_yaml()}\n---\n{body}").content


def write_verifier_card(folder: str | Path, config: Config, info: VerifierInfo, counts: dict, log: list[dict]) -> Path:
    path = Path(folder) / "README.md"
    atomic_write_text(path, render_verifier_card(config, info, counts, log))
    return path
