"""The terminal and the file system as a user meets them: --version, --help, library bars, file modes,
``data validate`` exit codes and unwrapped lines."""

from __future__ import annotations

import json
import os
import stat

import pytest
import typer.main

from selftaught.cli import app
from selftaught.common import atomic
from tests.cli.test_cli import run_cli


def test_version_names_selftaught_and_its_libraries():
    result = run_cli("--version")
    assert result.returncode == 0, result.stderr
    import torch
    import transformers

    line = result.stdout.strip()
    assert line.startswith("selftaught 0.1.0 (") and f"torch {torch.__version__}" in line
    assert f"transformers {transformers.__version__}" in line and "peft " in line and "python " in line


def _commands(group):
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _commands(command)
        else:
            yield name, command


def test_every_option_has_help_and_flags_take_no_value():
    root = typer.main.get_command(app)
    commands = dict(_commands(root))
    assert {"run", "report", "eval", "validate"} <= set(commands)
    for name, command in commands.items():
        for param in command.params:
            if param.param_type_name == "option":
                assert param.help, f"{name} {param.opts} has no help text"
    help_text = run_cli("run", "--help").stdout
    assert "<bool>" not in help_text
    lines = {line.split()[0]: line for line in help_text.splitlines() if line.strip().startswith("--")}
    assert lines["--quiet"].split()[1] == "no"  # `--quiet  no progress bars`: the flag takes no value


def test_library_progress_bars_are_off(tmp_path, tiny_llama, capfd):
    import transformers.utils.logging
    from transformers import AutoModelForCausalLM

    from selftaught.common.ui import quiet_libraries

    tiny_llama.save_pretrained(tmp_path / "m")
    transformers.utils.logging.enable_progress_bar()
    AutoModelForCausalLM.from_pretrained(tmp_path / "m")
    assert "Loading weights" in capfd.readouterr().err  # the bar this fixes, shown by default
    quiet_libraries()
    AutoModelForCausalLM.from_pretrained(tmp_path / "m")
    tiny_llama.save_pretrained(tmp_path / "m2")
    err = capfd.readouterr().err
    assert "Loading weights" not in err and "%|" not in err


@pytest.mark.parametrize("umask", [0o002, 0o077])
def test_run_files_and_folders_follow_the_umask(tmp_path, monkeypatch, umask):
    monkeypatch.setattr(atomic, "UMASK", umask)
    old = os.umask(umask)  # what the process would have had from the start
    try:
        atomic.atomic_write_json(tmp_path / "a.json", {"x": 1})
        atomic.atomic_save_dir(tmp_path / "ckpt", lambda tmp: (tmp / "w.bin").write_bytes(b"0"))
    finally:
        os.umask(old)

    def mode(path):
        return stat.S_IMODE(path.stat().st_mode)

    assert mode(tmp_path / "a.json") == 0o666 & ~umask
    assert mode(tmp_path / "ckpt") == 0o777 & ~umask
    assert mode(tmp_path / "ckpt" / "w.bin") == 0o666 & ~umask


def test_validate_empty_file_fails_and_names_it(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    result = run_cli("data", "validate", "--task", "gsm8k", "--path", str(empty))
    assert result.returncode == 1
    assert f"{empty}: no rows" in result.stdout


def test_validate_json_exits_1_on_invalid_rows_and_lines_do_not_wrap(tmp_path):
    deep = tmp_path / ("a_rather_long_directory_name_" * 3)
    deep.mkdir()
    data = deep / "gsm.jsonl"
    data.write_text(json.dumps({"question": "q?", "answer": "1 #### 1"}) + "\n" + '{"question": "no answer"}\n')
    as_json = run_cli("data", "validate", "--task", "gsm8k", "--path", str(data), "--json")
    assert as_json.returncode == 1
    report = json.loads(as_json.stdout)
    assert report["valid"] == 1 and report["invalid"] == 1
    plain = run_cli("data", "validate", "--task", "gsm8k", "--path", str(data))
    assert plain.returncode == 1
    problem = [line for line in plain.stdout.splitlines() if f"{data}:2" in line]
    assert len(problem) == 1 and "answer" in problem[0] and len(problem[0]) > 120  # one line, though long


def test_run_on_an_empty_data_file_names_the_file(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    result = run_cli(
        "run", "--out", str(tmp_path / "run"), "--set", "task.name=jsonl",
        "--set", f"task.data.train={empty}", "--set", f"task.data.test={empty}", "--set", "model.name_or_path=x/y",
    )  # fmt: skip
    assert result.returncode == 2
    assert f"{empty}: no examples found" in result.stderr and "Traceback" not in result.stderr
