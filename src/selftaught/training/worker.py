"""One training process of a launch (`training.launch`): ``python -m selftaught.training.worker JOB OUT_DIR``.

The main process prints one JSON line per optimizer step (``{"step", "loss"}``) and a last one with
the loss log and the number of processes, which the loop reads; it alone saves the model to OUT_DIR.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from selftaught.training.finite import NonFiniteError
from selftaught.training.launch import NON_FINITE_EXIT
from selftaught.training.phase import TrainJob, is_main_process, run_job, world_size


def main(argv: list[str]) -> int:
    job, out_dir = TrainJob.from_json(Path(argv[0]).read_text()), Path(argv[1])
    main_process = is_main_process()

    def on_step(step: int, loss: float | None) -> None:
        print(json.dumps({"step": step, "loss": loss}), flush=True)

    try:
        log = run_job(job, out_dir, on_step if main_process else None)
    except NonFiniteError as err:
        print(err, file=sys.stderr, flush=True)
        return NON_FINITE_EXIT
    if main_process:
        print(json.dumps({"log": log, "world_size": world_size()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
