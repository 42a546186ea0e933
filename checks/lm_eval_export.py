"""The exported lm-evaluation-harness task, run by lm-eval itself, against the run's own test accuracy.

`selftaught export` writes a task YAML with the run's exact test prompts and a `process_results` that
uses the run's answer extraction; lm-eval's `hf` model generating greedily from the checkpoint should
then score what `selftaught` scored. Not a CI test (lm-eval is not a dependency: `pip install lm-eval`).
Use a run whose model generates with ordinary positions (not the embedded digit-position default).
Run:  python checks/lm_eval_export.py RUN_DIR [--iteration N]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from selftaught.hub.export import export_run
from selftaught.rundir import read_json

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--iteration", type=int, default=None)
    args = parser.parse_args()
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    with tempfile.TemporaryDirectory() as tmp:
        done = export_run(args.run_dir, Path(tmp) / "export", args.iteration)
        folder = args.run_dir / f"iter_{done['iteration']:03d}"
        checkpoint = folder / "checkpoint"
        model_args = f"pretrained={checkpoint},dtype=float32"
        if (checkpoint / "adapter_config.json").is_file():  # lm-eval's hf model loads the adapter with peft
            base = json.loads((checkpoint / "adapter_config.json").read_text())["base_model_name_or_path"]
            model_args = f"pretrained={base},peft={checkpoint},dtype=float32"
        name = done["lm_eval"].stem
        start = time.perf_counter()
        out = simple_evaluate(
            model="hf",
            model_args=model_args,
            tasks=[name],
            task_manager=TaskManager(include_path=str(done["lm_eval"].parent)),
            batch_size=1,
            device="cpu",
        )
        seconds = time.perf_counter() - start
    lm_eval_acc = out["results"][name]["acc,none"]
    import yaml

    from selftaught.config import config_from_dict
    from selftaught.evaluate import evaluate_model

    # scored now, on the test data the export read (the run's metrics.json too, for reference)
    config = config_from_dict(yaml.safe_load((args.run_dir / "config.yaml").read_text()))
    run_acc = evaluate_model(config, str(checkpoint))["accuracy"]
    result = {
        "run_dir": str(args.run_dir),
        "iteration": done["iteration"],
        "task": name,
        "model_args": model_args,
        "questions": out["n-samples"][name]["effective"],
        "lm_eval_accuracy": lm_eval_acc,
        "selftaught_accuracy": run_acc,
        "run_metrics_accuracy": read_json(folder / "metrics.json")["accuracy"],
        "match": abs(lm_eval_acc - run_acc) < 1e-9,
        "lm_eval_seconds": round(seconds, 1),
    }
    for key, value in result.items():
        print(f"{key:20} {value}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "lm_eval_export.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
