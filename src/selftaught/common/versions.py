"""Versions of selftaught and the libraries a run depends on, for summary.json, model cards and --version;
what one library says of another's use of it that no user can act on."""

from __future__ import annotations

import platform
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def quiet_checkpointing_deprecation() -> Iterator[None]:
    """A scope in which transformers 5's FutureWarning for reading ``model.is_gradient_checkpointing`` is
    ignored. PEFT (wrapping a model with LoRA) and TRL 1.x (building a trainer, and at every step) read the
    old name: a warning in every run's log that no user can act on; the fix is theirs to ship."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        yield
