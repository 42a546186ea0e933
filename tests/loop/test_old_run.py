"""A run directory written before the restructuring (selftaught at b73c989) still reports and resumes.

`fixtures/run_before_restructure` holds a finished one-iteration tiny arithmetic run (``run/``) and its
cached M0 (``cache/``, the relative ``model.base.cache_dir`` of its config), exactly as that version
wrote them.
"""

import json
import shutil
from pathlib import Path

import pytest

from selftaught.config import config_from_dict
from selftaught.loop import run_star
from selftaught.reporting.table import report
from selftaught.rundir import RunDir, load_saved_config

pytestmark = pytest.mark.slow  # whole STaR runs: seconds to minutes each

FIXTURE = Path(__file__).parents[1] / "fixtures" / "run_before_restructure"
TIMINGS = {"seconds", "peak_rss_mib"}


@pytest.fixture
def old_run(tmp_path, monkeypatch):
    shutil.copytree(FIXTURE, tmp_path / "old")
    monkeypatch.chdir(tmp_path / "old")  # its config names M0's cache relative to the working directory
    return tmp_path / "old" / "run"


def test_an_old_run_reads_and_writes_back_the_same_summary(old_run):
    before = json.loads((old_run / "summary.json").read_text())
    run = RunDir(old_run)
    summary = run.read_summary()
    assert summary.to_json() == before  # every key kept, none added
    assert [row.iteration for row in summary.rows()] == [0, 1]
    assert run.metrics(run.iteration(1)).to_json() == json.loads((old_run / "iter_001" / "metrics.json").read_text())


def test_an_old_run_reports(old_run):
    table, plot = report(old_run)
    assert Path(plot).is_file()
    assert table is not None


def test_an_old_run_resumes_into_a_second_iteration(old_run):
    before = json.loads((old_run / "summary.json").read_text())
    data = load_saved_config(old_run)
    data["loop"]["iterations"] = 2  # a key that may change on resume
    summary = run_star(config_from_dict(data), old_run, resume=True, force=True)
    assert [row.iteration for row in summary.iterations] == [1, 2]
    after = json.loads((old_run / "summary.json").read_text())
    assert after["iterations"][0] == before["iterations"][0]  # the finished iteration is not redone
    assert after["base"] == before["base"]
    assert set(after) == set(before)  # the same kinds of facts, in the same file
    assert set(after["iterations"][1]) == set(before["iterations"][0])
    assert (old_run / "iter_002" / "checkpoint" / "model.safetensors").is_file()
