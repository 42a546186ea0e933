"""``selftaught export`` and ``push``: a run's kept rationales as a `datasets` dataset with a card, an
lm-evaluation-harness task that asks and grades exactly as the run did, and uploads to the Hub.

Export layout (DIR)::

    README.md              dataset card (hub format: the data_files config points at data/train.jsonl)
    data/train.jsonl       the kept rationales: id, prompt, completion, source (generated | rationalized)
    dataset/               the same as `datasets.Dataset.save_to_disk` (load with `load_from_disk`)
    lm_eval/<task>.yaml    lm-evaluation-harness task: the run's test prompts, greedy, graded by utils.py
    lm_eval/utils.py       process_results: the run's own answer extraction and check (imports selftaught)
    lm_eval/test.jsonl     test questions with their exact prompts and gold answers
    lm_eval/selftaught_config.json   the run's config (rebuilds the task inside utils.py)
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from selftaught.common.atomic import atomic_write_jsonl, atomic_write_text
from selftaught.config import Config
from selftaught.rundir import IterationMetrics, RunDir, is_run_dir, read_jsonl, read_saved_config

LM_EVAL_UTILS = '''"""lm-evaluation-harness hooks written by `selftaught export`: grade exactly as the STaR run did."""

import json
from pathlib import Path

from selftaught.config import config_from_dict
from selftaught.tasks import Example, make_task

_TASK = []


def _tuples(value):
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def _task():
    if not _TASK:
        config = json.loads(Path(__file__).with_name("selftaught_config.json").read_text())
        _TASK.append(make_task(config_from_dict(config)))
    return _TASK[0]


def process_results(doc, results):
    """acc = 1 when the completion's extracted answer checks against the gold answer (the run's rules)."""
    task = _task()
    example = Example(doc["id"], doc["question"], doc["answer"], _tuples(doc["meta"]))
    completion = task.stop().cut(results[0])  # where the run's completions end
    return {"acc": float(task.check(task.extract_answer(completion, example), example))}
'''


HUB_DATA_FILE = "data/train.jsonl"  # the export's copy of the kept rationales, as the Hub reads it


class ExportError(ValueError):
    """The run cannot be exported as asked (no such iteration, nothing kept); the message says why."""


def _saved_config(run_dir: Path) -> Config:
    if not is_run_dir(run_dir):
        raise ExportError(f"{run_dir} is not a run directory (no {RunDir.CONFIG})")
    return read_saved_config(run_dir)


def pick_iteration(run_dir: Path, iteration: int | None) -> int:
    done = RunDir(run_dir).finished_iterations()
    if not done:
        raise ExportError(f"{run_dir} has no finished iteration")
    if iteration is None:
        return done[-1]
    if iteration not in done:
        raise ExportError(f"--iteration {iteration}: {run_dir} has finished iterations {done}")
    return iteration


def dataset_card(config: Config, run_dir: Path, n: int, records: list[dict], metrics: IterationMetrics) -> str:
    from huggingface_hub import DatasetCard, DatasetCardData

    from selftaught.hub.modelcard import task_description

    data = DatasetCardData(
        language=["en"],
        tags=["selftaught", "star", "rationales", config.task.name],
        task_categories=["text-generation"],
        configs=[{"config_name": "default", "data_files": [{"split": "train", "path": HUB_DATA_FILE}]}],
    )
    sources = {s: sum(r["source"] == s for r in records) for s in sorted({r["source"] for r in records})}
    example = json.dumps(records[0], ensure_ascii=False, indent=2) if records else "{}"
    body = f"""
# STaR rationales: {config.task.name}, iteration {n}

Rationales that reached the right answer in iteration {n} of a
[STaR](https://arxiv.org/abs/2203.14465) run by `selftaught` (run `{run_dir.resolve().name}`): exactly what that
iteration fine-tuned on. Rationalized rows were found with the answer as a hint; their `prompt` has no hint.

- **Task and data:** {task_description(config)}
- **Model that wrote them:** iteration {n - 1}'s model (0 = the base model `{config.model.name_or_path}`)
- **Filter:** `{config.loop.filter}`; **rows:** {len(records)} ({", ".join(f"{k} {v}" for k, v in sources.items())})
- **Test accuracy after training on them:** {metrics.accuracy:.1%}

Fields: `id` (question id), `prompt` (the question as the model saw it, without hint), `completion`
(rationale and answer), `source` (`generated` or `rationalized`). It feeds TRL's `SFTTrainer` as is
(prompt-completion format).

```json
{example}
```

```python
from datasets import load_from_disk
ds = load_from_disk("dataset")  # or load_dataset("json", data_files="data/train.jsonl")
```
"""
    return DatasetCard(f"---\n{data.to_yaml()}\n---\n{body}").content


def lm_eval_task(config: Config, out: Path, name: str, max_gen_toks: int) -> dict:
    """The task YAML (as a dict; `process_results` is written as lm-eval's ``!function`` tag)."""
    from selftaught.tasks import make_task

    return {
        "task": name,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str((out / "test.jsonl").resolve())}},
        "test_split": "test",
        "output_type": "generate_until",
        "doc_to_text": "{{prompt}}",
        "doc_to_target": "{{answer}}",
        # the task's stop strings (lm-eval stops at them); its end pattern is applied in process_results
        "generation_kwargs": {
            "until": list(make_task(config).stop().strings),
            "do_sample": False,
            "max_gen_toks": max_gen_toks,
        },  # fmt: skip
        "process_results": "utils.process_results",
        "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
        "metadata": {"version": 1.0, "selftaught_task": config.task.name},
    }


def _dump_lm_eval_yaml(task: dict) -> str:
    text = yaml.safe_dump(task, sort_keys=False, allow_unicode=True)
    return text.replace("process_results: utils.process_results", "process_results: !function utils.process_results")


def write_lm_eval(config: Config, out: Path, name: str) -> Path:
    """lm_eval/: the test prompts (rendered exactly as the run rendered them), the YAML and utils.py."""
    from selftaught.tasks import make_task

    task = make_task(config)
    examples = task.load("test")
    docs = [
        {
            "id": ex.id,
            "question": ex.question,
            "answer": ex.answer,
            "meta": json.loads(json.dumps(ex.meta)),
            "prompt": task.prompt(ex),
            "bucket": task.bucket(ex),
        }
        for ex in examples
    ]
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_jsonl(out / "test.jsonl", docs)
    atomic_write_text(out / "selftaught_config.json", json.dumps(config.to_dict(), indent=2) + "\n")
    atomic_write_text(out / "utils.py", LM_EVAL_UTILS)
    path = out / f"{name}.yaml"
    atomic_write_text(
        path, _dump_lm_eval_yaml(lm_eval_task(config, out, name, max(map(task.max_new_tokens, examples))))
    )
    return path


def export_run(run_dir: str | Path, out_dir: str | Path, iteration: int | None = None) -> dict:
    """Write the export folder (see the module doc); returns what was written."""
    from datasets import Dataset

    run_dir, out = Path(run_dir), Path(out_dir)
    config = _saved_config(run_dir)
    n = pick_iteration(run_dir, iteration)
    folder = RunDir(run_dir).iteration(n)
    records = read_jsonl(folder.train_data)
    if not records:
        raise ExportError(f"{folder.train_data} is empty: nothing was kept in iteration {n}")
    metrics = RunDir(run_dir).metrics(folder)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_jsonl(out / HUB_DATA_FILE, records)
    if (out / "dataset").exists():
        shutil.rmtree(out / "dataset")
    Dataset.from_list(records).save_to_disk(str(out / "dataset"))
    card = dataset_card(config, run_dir, n, records, metrics)
    atomic_write_text(out / "README.md", card)
    atomic_write_text(out / "dataset" / "README.md", card)
    name = f"selftaught_{config.task.name.replace(':', '_').replace('.', '_')}"
    task_yaml = write_lm_eval(config, out / "lm_eval", name)
    return {"iteration": n, "rows": len(records), "dataset": out / "dataset", "lm_eval": task_yaml}


def push_folder(folder: str | Path, repo_id: str, repo_type: str = "model", private: bool = False) -> str:
    """Create (if needed) and upload ``folder`` to the Hub repo ``repo_id``; returns the commit URL.

    The token comes from huggingface_hub's usual places (HF_TOKEN, ``hf auth login``). An export's
    ``dataset/`` (arrow files) stays local: the hub copy is ``data/train.jsonl`` plus the card.
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi()
    try:
        api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
        commit = api.upload_folder(
            folder_path=str(folder),
            repo_id=repo_id,
            repo_type=repo_type,
            ignore_patterns=["dataset/*", ".*"],
            commit_message="Upload from selftaught",
        )
    except (HfHubHTTPError, OSError) as err:  # no token, no network, no permission
        raise ExportError(f"cannot push {folder} to {repo_id}: {str(err).splitlines()[0]}") from None
    return str(getattr(commit, "commit_url", commit))
