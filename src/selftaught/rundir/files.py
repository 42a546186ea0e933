"""Checked reads of run-directory files, and the rules that keep a run directory safe to delete in.

Nothing inside a run directory may be a symbolic link: resume deletes scratch folders and the
Trainer rotates checkpoints, and through a link either would delete files elsewhere. Links are
refused, never followed. A file that is whole but wrong (edited, truncated, damaged on disk) is
reported as one `RunDirError` naming it, never as a traceback.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from selftaught.common.bounded import printable

MAX_JSON_BYTES = 64 << 20  # metrics, phases, summary: kilobytes; a bigger file is damage
MAX_JSONL_LINE_BYTES = 16 << 20  # one generated row (a rationale), one training record


class RunDirError(ValueError):
    """The run directory cannot be used as it is; the message names the path and what to do."""


def damaged(path: Path, problem: str, fix: str = "") -> RunDirError:
    fix = fix or f"restore the file, or delete {printable(str(path.parent))} to redo that step"
    return RunDirError(f"{printable(str(path))}: {problem}; the run directory is damaged: {fix}")


# --------------------------------------------------------------------------------- checked reads
def read_json(path: str | Path, kind: type | None = None, fix: str = ""):
    """The JSON value in ``path``; a missing, oversized, non-UTF-8 or malformed file is a `RunDirError`."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_JSON_BYTES + 1)
    except FileNotFoundError:
        raise damaged(path, "missing", fix) from None
    except IsADirectoryError:
        raise damaged(path, "is a folder, not a file", fix) from None
    if len(raw) > MAX_JSON_BYTES:
        raise damaged(path, f"larger than {MAX_JSON_BYTES >> 20} MiB", fix)
    try:
        value = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise damaged(path, f"not UTF-8 (byte {err.start})", fix) from None
    except json.JSONDecodeError as err:
        raise damaged(path, f"not valid JSON ({err.msg}, line {err.lineno} column {err.colno})", fix) from None
    if kind is not None and not isinstance(value, kind):
        raise damaged(path, f"expected a JSON {kind.__name__}, got {type(value).__name__}", fix)
    return value


def read_jsonl(path: str | Path, keys: tuple[str, ...] = ()) -> list[dict]:
    """Rows of a JSONL file, each an object holding ``keys``; problems name ``file:line``."""
    path = Path(path)
    rows = []
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        raise damaged(path, "missing") from None
    with handle:
        for lineno, raw in enumerate(iter(lambda: handle.readline(MAX_JSONL_LINE_BYTES + 1), b""), start=1):
            where = path.with_name(f"{path.name}:{lineno}")
            if len(raw) > MAX_JSONL_LINE_BYTES:
                raise damaged(where, f"line longer than {MAX_JSONL_LINE_BYTES >> 20} MiB")
            if not raw.strip():
                continue
            try:
                row = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as err:
                raise damaged(where, f"not valid JSON ({getattr(err, 'msg', 'not UTF-8')})") from None
            if not isinstance(row, dict) or any(key not in row for key in keys):
                missing = [k for k in keys if not isinstance(row, dict) or k not in row]
                raise damaged(where, f"not a row of this file (missing {', '.join(missing) or 'object'})")
            rows.append(row)
    return rows


def refuse_symlinks(root: str | Path, below: str | Path | None = None) -> None:
    """Raise `RunDirError` if anything inside ``root`` (or on the way to ``below``, and under it) is a link.

    ``root`` itself may be a link (``runs -> /data/runs`` is the operator's choice); nothing inside may.
    """
    root = Path(root)
    start = Path(below) if below is not None else root
    node = start
    while node != root and root in node.parents:
        if node.is_symlink():
            raise _link_error(node)
        node = node.parent
    if not start.is_dir() or (start != root and start.is_symlink()):
        return
    for folder, dirs, files in os.walk(start):  # followlinks=False: a linked folder is listed, not entered
        for name in dirs + files:
            if os.path.islink(os.path.join(folder, name)):
                raise _link_error(Path(folder) / name)


def _link_error(path: Path) -> RunDirError:
    return RunDirError(
        f"{printable(str(path))} is a symbolic link; selftaught never follows links inside a run directory "
        "(resume and checkpoint rotation would delete files where it points): replace it with a real file or folder"
    )


def remove_scratch(root: str | Path, path: str | Path) -> None:
    """Delete the scratch folder ``path`` inside ``root``; refuse if it, or a folder on the way, is a link."""
    refuse_symlinks(root, path)
    if Path(path).is_dir():
        shutil.rmtree(path)  # Python's rmtree unlinks links inside without following them


def sweep_temp(root: str | Path) -> list[str]:
    """Remove ``.NAME.*.tmp`` leftovers of writers that were killed mid-write (the caller holds the lock)."""
    removed = []
    for folder, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            if name.startswith(".") and name.endswith(".tmp"):
                path = Path(folder) / name
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
                removed.append(str(path))
        dirs[:] = [d for d in dirs if not (d.startswith(".") and d.endswith(".tmp"))]
    return removed
