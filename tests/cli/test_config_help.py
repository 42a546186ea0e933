"""Field help as data: every setting documents itself, ``selftaught config`` prints it, the README agrees."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from selftaught.cli import app
from selftaught.config import Config, describe_fields

README = Path(__file__).resolve().parents[2] / "README.md"


def _leaves(obj, prefix=""):
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            yield from _leaves(value, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", value


def test_every_leaf_field_has_help_and_its_real_default():
    described = {f.key: f for f in describe_fields()}
    defaults = dict(_leaves(Config()))
    assert list(described) == list(defaults)  # every leaf, in declaration order, nothing else
    for key, value in defaults.items():
        field = described[key]
        assert field.help.strip(), f"{key} has no help"
        assert field.default == value and type(field.default) is type(value), key
        assert field.type and field.shown_default, key


def _config_output(*args: str, columns: int = 80) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": str(columns)}
    return subprocess.run(
        [sys.executable, "-m", "selftaught.cli", "config", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_config_prints_every_key_whole_at_80_columns_when_piped():
    result = _config_output()
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "…" not in out  # nothing cut
    lines = out.splitlines()
    for field in describe_fields():
        head = f"{field.key}  {field.type} = {field.shown_default}"
        assert head in lines, head
        start = lines.index(head) + 1
        body = []
        for line in lines[start:]:
            if not line.startswith("    "):
                break
            body.append(line.strip())
        assert " ".join(body) == " ".join(field.help.split()), field.key  # the whole help, only wrapped
    wide = [line for line in lines if len(line) > 80 and " " in line.strip()]
    assert not wide, wide


def _invoke(*args: str):
    return CliRunner().invoke(app, ["config", *args], env={"COLUMNS": "80"})


def test_a_prefix_filters_the_keys():
    result = _invoke("train")
    assert result.exit_code == 0, result.output
    keys = re.findall(r"^(\S+)  ", result.output, flags=re.M)
    assert keys == [f.key for f in describe_fields() if f.key.startswith("train.")]
    lora = re.findall(r"^(\S+)  ", _invoke("model.lora").output, flags=re.M)
    assert lora and all(key.startswith("model.lora.") for key in lora) and "model.lora.r" in lora


@pytest.mark.parametrize(
    "prefix, hint",
    [
        ("trian", "did you mean 'train'?"),
        ("zzz", "sections: seed, task, model, generation, train, loop, distributed, verifier, report_to"),
    ],
)
def test_an_unknown_prefix_is_one_line_and_exit_2(prefix, hint):
    result = _config_output(prefix)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [f"error: no config key starts with '{prefix}'; {hint}"]


def _readme_rows() -> list[tuple[str, str, str]]:
    text = README.read_text()
    section = text[text.index("## Configuration") :]
    section = section[: section.index("\n## ", 1)]
    rows = re.findall(r"^\| `([^`]+)` \| `([^`]*)` \| (.*) \|$", section, flags=re.M)
    return [(key, default, meaning.replace("\\|", "|")) for key, default, meaning in rows]


def test_the_readme_table_says_what_the_fields_say():
    rows = _readme_rows()
    assert len(rows) >= 10
    described = {f.key: f for f in describe_fields()}
    for key, default, meaning in rows:
        assert key in described, f"README names {key}, which is no config key"
        assert (default, meaning) == (described[key].shown_default, described[key].help), (
            f"README's row for {key} differs from `selftaught config {key}`"
        )
