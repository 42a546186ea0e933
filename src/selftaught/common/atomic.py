"""Atomic files: written under a temporary name, fsynced, renamed, so a reader sees all or nothing.

Generic (no run-directory knowledge), so every layer may import it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from selftaught.common.bounded import printable


class LinkRefused(ValueError):
    """A folder about to be replaced is a symbolic link: replacing it would delete what it points to."""


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


UMASK = _current_umask()  # read once: os.umask can only be read by setting it, which is not thread-safe


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(fd, 0o666 & ~UMASK)  # mkstemp makes 0600; a shared run follows the umask like any file
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)  # replaces a link at ``path`` itself, never writes through it
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_write_jsonl(path: str | Path, rows: list[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def atomic_save_dir(path: str | Path, write) -> None:
    """Call ``write(tmp_dir)`` then move the finished folder to ``path`` (replacing any old one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        tmp.chmod(0o777 & ~UMASK)  # mkdtemp makes 0700
        write(tmp)
        if path.is_symlink():
            raise LinkRefused(f"{printable(str(path))} is a symbolic link; refusing to replace what it points to")
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
