"""Imports go only downward through the layers of docs/architecture.md."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "selftaught"

LAYERS = {
    "common": 0,
    "config": 1,
    "rundir": 2,
    "tasks": 2,
    "models": 2,
    "generation": 3,
    "training": 3,
    "samples": 3,  # the typed rows that cross modules: read and written by generation, training, star
    "star": 4,
    "evaluate": 4,
    "grading": 4,
    "reporting": 5,
    "hub": 5,
    "verifier": 6,
    "loop": 7,
    "cli": 8,
}


def _unit(module: str) -> str:
    """``selftaught.rundir.layout`` -> ``rundir``."""
    return module.split(".")[1] if module.count(".") >= 1 else ""


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "selftaught":
                found += [(node.lineno, f"selftaught.{alias.name}") for alias in node.names]
            elif node.module.startswith("selftaught."):
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("selftaught.")]
    return found


def _module_of(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def upward_imports() -> list[str]:
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        here = _unit(_module_of(path))
        if here not in LAYERS:
            continue
        for line, target in _imports(path):
            there = _unit(target)
            if there in LAYERS and LAYERS[there] > LAYERS[here]:
                bad.append(
                    f"{path.relative_to(SRC.parent)}:{line} ({here}, layer {LAYERS[here]}) imports {target} "
                    f"(layer {LAYERS[there]})"
                )
    return bad


def test_every_module_belongs_to_a_layer():
    units = {_unit(_module_of(p)) for p in SRC.rglob("*.py")} - {""}
    assert units <= set(LAYERS), f"modules without a layer: {sorted(units - set(LAYERS))}"


def test_no_import_runs_upward():
    assert upward_imports() == []


def test_no_run_directory_file_name_is_spelled_outside_rundir():
    names = (
        "metrics.json",
        "summary.json",
        "config.yaml",
        "phases.json",
        "memory.json",
        "generated.jsonl",
        "train.jsonl",
        "eval.jsonl",
        "train_log.jsonl",
        "pairs.jsonl",
        "report.html",
        "accuracy.png",
        "run.lock",
    )
    spelled = []
    for path in sorted(SRC.rglob("*.py")):
        if _unit(_module_of(path)) == "rundir":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names:
                spelled.append(f"{path.relative_to(SRC.parent)}:{node.lineno} {node.value!r}")
    assert spelled == []
