"""Versions of selftaught and the libraries a run depends on, for summary.json, model cards and --version."""

from __future__ import annotations

import platform
from importlib import metadata

LIBRARIES = ("selftaught", "torch", "transformers", "peft", "datasets", "accelerate", "huggingface_hub", "tokenizers")


def library_versions() -> dict[str, str]:
    """``{name: version}`` for selftaught, the ML stack and Python; a missing package reads "not installed"."""
    found = {}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    found["python"] = platform.python_version()
    return found


def version_line() -> str:
    """One line for ``selftaught --version``.

    >>> version_line().startswith("selftaught ")
    True
    """
    v = library_versions()
    others = ", ".join(f"{name} {v[name]}" for name in ("torch", "transformers", "peft", "datasets", "python"))
    return f"selftaught {v['selftaught']} ({others})"
