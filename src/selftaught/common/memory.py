"""Peak resident memory of one phase (Linux): reset the process's high-water mark, run, read it.

Real models make memory the first limit on a small machine (Gemma 3 270M's training needs ~10 GB in fp32),
so each phase's peak is recorded beside its seconds. Elsewhere (no ``/proc``) both calls do nothing and
the peak is unknown (None). Only this process is counted: phases run in it by default.
"""

from __future__ import annotations

from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def reset_peak_rss() -> bool:
    """Start a new high-water mark at the current resident size; False where the kernel does not allow it."""
    try:
        _CLEAR_REFS.write_text("5")  # "5" resets VmHWM (Linux >= 4.0), nothing else
        return True
    except OSError:
        return False


def peak_rss_mib() -> float | None:
    """This process's peak resident memory since the last reset (or its start), in MiB; None if unknown."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)  # the kernel reports kB
    except (OSError, ValueError, IndexError):
        return None
    return None
