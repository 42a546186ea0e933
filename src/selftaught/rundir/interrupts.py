"""How a run stops when an operator stops it, or the disk does: one line, every time.

* SIGTERM (``docker stop``, ``timeout``, a scheduler) is handled like Ctrl-C: the first signal raises
  `Interrupted` where the process is, finally-blocks run (temporary files are removed, the lock is
  released), and one line says how to resume. A second signal while that unwinding runs (say, during
  a checkpoint write) ends the process at once with the same line and no traceback: every file is
  whole or absent (atomic writes), the kernel drops the lock, and resume removes leftovers.
* A full disk surfaces from many writers, each in its own way: ``OSError(ENOSPC)`` from Python,
  ``SafetensorError(... os error 28)``, a bare ``Exception`` from tokenizers' Rust code, torch's
  ``RuntimeError`` without any errno. `write_failure` recognises them all and gives one message.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from selftaught.common.bounded import printable

FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
FULL_MARKERS = ("no space left on device", "disk quota exceeded", "os error 28", "os error 122", "storagefull")
# torch's stream writer reports a failed write without its cause; a nearly full disk is then the cause
TORCH_WRITE_MARKERS = ("iostream error", "pytorchstreamwriter failed", "unexpected pos", "file write failed")
NEARLY_FULL_BYTES = 256 << 20


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM; ``signum`` says which (exit status 128 + signum)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def resume_line(resume_command: str | Callable[[], str], signum: int = signal.SIGINT) -> str:
    name = signal.Signals(signum).name
    command = resume_command() if callable(resume_command) else resume_command
    return f"interrupted ({name}): finished work is saved; resume with: {command}"


@contextmanager
def stop_signals(resume_command: str | Callable[[], str], write=None) -> Iterator[None]:
    """Inside: SIGINT and SIGTERM raise `Interrupted`; on the way out, one resume line and SystemExit(128+n).

    After an interrupt both signals stay ignored: the process is ending, and a late Ctrl-C must not turn
    its exit into a traceback. Otherwise the previous handlers are restored.
    """
    write = write or (lambda line: print(line, file=sys.stderr, flush=True))
    fired: list[int] = []

    def handler(signum, frame):
        if not fired:
            fired.append(signum)
            raise Interrupted(signum)
        # a second signal while the first unwinds: leave now, quietly (see the module docstring)
        os.write(2, (printable(resume_line(resume_command, fired[0])) + "\n").encode())
        os._exit(128 + fired[0])

    if not _main_thread():
        yield  # signal handlers can only be set from the main thread (e.g. a notebook's worker)
        return
    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    except KeyboardInterrupt as err:
        signum = getattr(err, "signum", signal.SIGINT)
        for s in previous:  # the process is ending: nothing may interrupt the last line or the exit
            signal.signal(s, signal.SIG_IGN)
        write(printable(resume_line(resume_command, signum)))
        raise SystemExit(128 + signum) from None
    except BaseException:
        _restore(previous)
        raise
    _restore(previous)


def _restore(previous: dict) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _chain(err: BaseException) -> Iterator[BaseException]:
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


def is_disk_full(err: BaseException, where: str | Path = ".") -> bool:
    """True if ``err`` (or what caused it) says the disk or quota is full."""
    for e in _chain(err):
        if isinstance(e, OSError) and e.errno in FULL_ERRNOS:
            return True
        text = str(e).lower()
        if any(marker in text for marker in FULL_MARKERS):
            return True
        if any(marker in text for marker in TORCH_WRITE_MARKERS):
            return _free_bytes(where) < NEARLY_FULL_BYTES
    return False


def _free_bytes(where: str | Path) -> int:
    path = Path(where)
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return 0


def write_failure(err: BaseException, run_dir: str | Path | None) -> str | None:
    """The one line for a failed write (full disk, read-only or failing filesystem), or None if ``err``
    is not a write failure. The run directory is consistent either way: resume continues."""
    shown = printable(str(run_dir)) if run_dir is not None else None
    resume = f"; then: selftaught run --resume {shown}" if shown else ""
    if is_disk_full(err, run_dir or "."):
        return f"no space left on device while writing {shown or 'output'}: free some space{resume}"
    if isinstance(err, OSError) and err.errno in (errno.EROFS, errno.EIO, errno.EACCES, errno.EPERM):
        where = f" ({printable(str(err.filename))})" if err.filename else ""
        return f"cannot write{where}: {err.strerror}; fix it{resume}"
    return None
