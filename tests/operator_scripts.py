"""Wrappers around the CLI shared by the operator-fault tests and checks/operator_faults.py.

Each is a Python script run as ``python -c SCRIPT MARKER selftaught-args...``; it patches the loop,
then runs the real CLI.
"""

SLOW_CHECKPOINT = """\
import pathlib, sys, time
try:
    import selftaught.training.phase as phase
except ImportError:  # selftaught before the training phase module (checks/operator_faults.py --src OLD)
    import selftaught.loop as phase
real, marker = phase.save_model, pathlib.Path(sys.argv[1])
def slow_save(*args, **kwargs):  # a large checkpoint on a slow disk
    marker.touch()
    real(*args, **kwargs)
    time.sleep(3)
phase.save_model = slow_save
sys.argv = ["selftaught"] + sys.argv[2:]
from selftaught.cli import main
main()
"""
