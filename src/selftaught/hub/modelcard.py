"""Model cards (README.md) for the checkpoints a run writes, built with huggingface_hub's `ModelCard`.

A card records what someone evaluating the checkpoint elsewhere needs: the base model, the task and
data, the iteration and its counts and accuracy, the exact prompt format with a real example, how the
answer is read back, the library versions, and how to load the folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from selftaught.common.versions import library_versions
from selftaught.config import Config
from selftaught.models import absolute_model_path
from selftaught.rundir import IterationMetrics, StepDir

MAX_PROMPT_CHARS = 6000  # a long few-shot prefix is cut in the card (the full text is in the task's files)


def answer_rule(config: Config) -> str:
    """How the run reads the answer out of a completion, in words: the task's own ``answer_rule``."""
    from selftaught.tasks import make_task

    rule = getattr(make_task(config), "answer_rule", None)  # optional for a custom task
    return rule() if callable(rule) else f"`extract_answer` of the custom task `{config.task.name}`"


def task_description(config: Config) -> str:
    """The task and its data in one line: the task's own ``description``."""
    from selftaught.tasks import make_task
    from selftaught.tasks.data import describe_data

    describe = getattr(make_task(config), "description", None)  # optional for a custom task
    return describe() if callable(describe) else describe_data(config.task.name, config.task.data)


@dataclass
class CardFacts:
    """Everything a card states; gathered by the loop, rendered by `render_model_card`."""

    config: Config
    iteration: int
    base_model: str  # absolute path or hub id
    metrics: IterationMetrics
    prompt_example: str  # the text given to the model at evaluation (before any chat template)
    completion_example: str  # what the checkpoint wrote for it
    chat: bool = False  # prompts go through the tokenizer's chat template
    adapter: bool = False  # the folder is a PEFT adapter
    positions: str = "sequential"
    extra: dict = field(default_factory=dict)


def _hub_id(name: str) -> str | None:
    """``name`` if it looks like a hub id (hub metadata rejects local paths), else None."""
    return None if name.startswith(("/", ".", "~")) or Path(name).exists() or name.count("/") != 1 else name


def _card_data(facts: CardFacts):
    from huggingface_hub import EvalResult, ModelCardData

    task = facts.config.task.name
    results = [
        EvalResult(
            task_type="text-generation",
            dataset_type=task,
            dataset_name=task,
            metric_type="accuracy",
            metric_value=round(float(facts.metrics.accuracy), 4),
        )
    ]
    return ModelCardData(
        base_model=_hub_id(facts.base_model),
        library_name="peft" if facts.adapter else "transformers",
        pipeline_tag="text-generation",
        tags=["selftaught", "star", "reasoning", task],
        model_name=f"selftaught-{task}-iter{facts.iteration}",
        eval_results=results,
    )


def _fence(text: str) -> str:
    if len(text) > MAX_PROMPT_CHARS:
        text = f"[... {len(text) - MAX_PROMPT_CHARS} characters of few-shot prefix cut ...]" + text[-MAX_PROMPT_CHARS:]
    return "````text\n" + text + "\n````"


def _how_to_load(facts: CardFacts) -> str:
    if facts.positions == "digit":
        return (
            "This model uses selftaught's digit positions (Abacus-style ids per column), which `generate` does "
            "not compute; generate with selftaught:\n\n```bash\nselftaught eval PATH/TO/THIS/FOLDER --recipe "
            "RECIPE\n```\n\n```python\nfrom selftaught.models import load_model\nlm = load_model('PATH/TO/THIS/FOLDER')"
            "  # model, tokenizer and position scheme\n```"
        )
    if facts.adapter:
        merged = "\n\nMerged full weights are in `merged/` (load them like any transformers model)." * bool(
            facts.extra.get("merged")
        )
        return (
            f"A PEFT LoRA adapter on `{facts.base_model}` (recorded in `adapter_config.json`):\n\n```python\n"
            "from peft import AutoPeftModelForCausalLM\nfrom transformers import AutoTokenizer\n"
            "model = AutoPeftModelForCausalLM.from_pretrained('PATH/TO/THIS/FOLDER')\n"
            "tokenizer = AutoTokenizer.from_pretrained('PATH/TO/THIS/FOLDER')\n```" + merged
        )
    return (
        "```python\nfrom transformers import AutoModelForCausalLM, AutoTokenizer, pipeline\n"
        "model = AutoModelForCausalLM.from_pretrained('PATH/TO/THIS/FOLDER')\n"
        "tokenizer = AutoTokenizer.from_pretrained('PATH/TO/THIS/FOLDER')\n"
        "generate = pipeline('text-generation', model=model, tokenizer=tokenizer)\n```"
    )


def render_model_card(facts: CardFacts) -> str:
    """The README.md text: YAML metadata (hub format) and a markdown body."""
    from huggingface_hub import ModelCard

    m, cfg = facts.metrics, facts.config
    buckets = " | ".join(f"{b}: {v:.1%}" for b, v in m.accuracy_by_bucket.items())
    counted = {k: v for k, v in m.counts().items() if k.startswith("num_")}
    counts = ", ".join(f"{k.removeprefix('num_').replace('_', ' ')} {v}" for k, v in counted.items())
    versions = ", ".join(f"{k} {v}" for k, v in library_versions().items())
    chat = (
        "The prompt is sent as one user message through the tokenizer's chat template."
        if facts.chat
        else "The prompt is given as plain text (no chat template); the model continues it."
    )
    body = f"""
# selftaught STaR checkpoint: {cfg.task.name}, iteration {facts.iteration}

Fine-tuned with [STaR](https://arxiv.org/abs/2203.14465) (Self-Taught Reasoner) by `selftaught`.

- **Base model:** `{facts.base_model}`{" (LoRA adapter)" if facts.adapter else ""}{_gguf_line(facts.base_model)}
- **Task and data:** {task_description(cfg)}
- **Iteration:** {facts.iteration} ({cfg.loop.mode}, filter `{cfg.loop.filter}`, rationalization \
{cfg.loop.rationalization}, restart from base {cfg.loop.restart_from_base})
- **Training data:** {counts}; {m.train_steps if m.train_steps is not None else "?"} optimizer steps
{_objective_line(cfg)}- **Test accuracy (greedy):** {m.accuracy:.1%}{f" (by bucket: {buckets})" if buckets else ""}

## Prompt format

{chat} Evaluation prompts include the few-shot prefix, if the task has one. The answer is read as
{answer_rule(cfg)}.

Example prompt (test set):

{_fence(facts.prompt_example)}

This checkpoint's greedy completion:

{_fence(facts.completion_example)}

## How to load

{_how_to_load(facts)}

## Versions

{versions}
"""
    return ModelCard(f"---\n{_card_data(facts).to_yaml()}\n---\n{body}").content


def _objective_line(config: Config) -> str:
    """The rpo objective in words, on its own line (none for the paper's SFT)."""
    t = config.train
    if t.objective != "rpo":
        return ""
    return (
        "- **Objective:** iterative reasoning preference optimisation (Pang et al. 2024): DPO (beta "
        f"{t.rpo_beta}) preferring each kept rationale to the wrong samples of its question, plus {t.rpo_alpha} x "
        "the NLL of the kept rationales; reference model: the base model\n"
    )


def write_model_card(folder: str | Path, facts: CardFacts) -> Path:
    """Write ``folder/README.md`` atomically (replacing PEFT's empty template)."""
    from selftaught.common.atomic import atomic_write_text

    path = Path(folder) / "README.md"
    atomic_write_text(path, render_model_card(facts))
    return path


def _gguf_line(base_model: str) -> str:
    """Where a base model converted from a GGUF file came from (file and SHA-256), on its own line."""
    from selftaught.models.gguf import gguf_origin

    origin = gguf_origin(base_model)
    if not origin:
        return ""
    return f"\n- **Converted from GGUF:** `{origin.get('source')}` (sha256 `{origin.get('sha256')}`)"


def write_iteration_cards(
    config: Config,
    task,
    test_set: list,
    folder: Path,
    iteration: int,
    metrics: IterationMetrics,
    base_model: str | Path,
) -> None:
    """Cards for ``folder/checkpoint`` (and its ``merged/``), from the iteration's files."""
    from selftaught.models import load_tokenizer, use_chat
    from selftaught.models.embedded import load_meta
    from selftaught.samples import read_samples

    checkpoint = StepDir(folder).checkpoint
    meta = load_meta(checkpoint)
    eval_path = StepDir(folder).eval_samples
    eval_rows = read_samples(eval_path) if eval_path.is_file() else []
    first = test_set[0]
    completion = next((r.text for r in eval_rows if r.id == first.id), "")
    chat = use_chat(load_tokenizer(checkpoint, config.model), config.model, checkpoint)
    adapter = (checkpoint / "adapter_config.json").is_file()
    facts = CardFacts(
        config,
        iteration,
        absolute_model_path(meta.get("base_model") or base_model),
        metrics,
        task.prompt(first, few_shot=config.loop.few_shot_for_trained),  # how this checkpoint is prompted
        completion,
        chat=chat,
        adapter=adapter,
        positions=meta.get("positions", "sequential"),
        extra={"merged": (checkpoint / "merged").is_dir()},
    )
    write_model_card(checkpoint, facts)
    if (checkpoint / "merged").is_dir():
        facts.adapter, facts.extra = False, {}
        write_model_card(checkpoint / "merged", facts)
