"""One training process of a launch (`training.launch`): ``python -m selftaught.training.worker JOB OUT_DIR``.

The main process prints one JSON line per optimizer step (``{"step", "loss"}``), which the loop reads
for its progress bar and divergence check, saves the model to OUT_DIR, and writes its result
(``{"log", "world_size"}`` or ``{"error"}``) to ``result.json`` in the job's scratch folder.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

from selftaught.common.atomic import atomic_write_json
from selftaught.training.finite import NonFiniteError
from selftaught.training.launch import NON_FINITE_EXIT, RESULT_FILE, die_with_parent
from selftaught.training.phase import TrainJob, is_main_process, run_job, world_size


def main(argv: list[str]) -> int:
    die_with_parent(signal.SIGKILL)  # torchrun's agent is the parent; this process is in a session of its own
    job, out_dir = TrainJob.from_json(Path(argv[0]).read_text()), Path(argv[1])
    main_process = is_main_process()
    result = Path(job.scratch) / RESULT_FILE

    def on_step(step: int, loss: float | None) -> None:
        print(json.dumps({"step": step, "loss": loss}), flush=True)

    try:
        log = run_job(job, out_dir, on_step if main_process else None)
    except NonFiniteError as err:
        if main_process:
            atomic_write_json(result, {"error": str(err)})
        return NON_FINITE_EXIT
    if main_process:
        atomic_write_json(result, {"log": log, "world_size": world_size()})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
