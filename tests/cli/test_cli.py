import os
import subprocess
import sys

import pytest


def run_cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "selftaught.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["run", "--set", "loop.iteration=2"], "did you mean 'iterations'"),
        (["run", "--set", "train.first_steps=-1"], "train.first_steps must be >= 1"),
        (["run", "missing-recipe.yaml"], "does not exist"),
        (["run", "--resume", "/nonexistent/run"], "cannot resume"),
        (["report", "/nonexistent/run"], "no summary.json"),
    ],
)
def test_bad_input_gets_one_line_and_exit_2(args, fragment):
    result = run_cli(*args)
    assert result.returncode == 2, result.stderr
    assert fragment in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_output_dir_non_root(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    result = run_cli("run", "--out", str(locked / "run"), "--set", "loop.iterations=1")
    assert result.returncode == 2 and "not writable" in result.stderr


def test_output_path_that_is_a_file(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run_cli("run", "--out", str(blocker / "run"), "--set", "loop.iterations=1")
    assert result.returncode == 2, result.stderr
    assert "not writable" in result.stderr and "Traceback" not in result.stderr
