"""One process per run directory: an ``fcntl.flock`` on ``RUN/run.lock``.

The kernel holds the lock for the process and drops it when the process ends in any way (exit,
SIGKILL, OOM, a container that is stopped or dies), so a lock is never stale: a run whose holder is
gone, on this host or in a container that no longer exists, is simply taken over. The ``PID HOST``
written into the file is information for the operator only; it decides nothing. Two processes that
try at the same instant cannot both win: the kernel grants the lock to one.

``flock`` needs a local filesystem (or NFSv4, which emulates it); a filesystem without locks is
refused with a clear message rather than run unprotected.
"""

from __future__ import annotations

import atexit
import errno
import fcntl
import os
import socket
from pathlib import Path

_HELD: dict[str, int] = {}  # absolute lock path -> open fd, for every lock this process holds


LOCK_FILE = "run.lock"  # RunDir.LOCK


class RunInUse(RuntimeError):
    """Another live process holds the run directory."""


class RunLock:
    def __init__(self, root: str | Path):
        self.path = Path(root) / LOCK_FILE
        self.key = os.path.abspath(self.path)

    def holder(self) -> str:
        """What the lock file says about its holder (informational)."""
        try:
            with open(self.path, "rb") as handle:
                pid, _, host = handle.read(200).decode("utf-8", "replace").strip().partition(" ")
        except OSError:
            return "another process"
        return f"process {pid} on host {host}" if pid.isdigit() and host else "another process"

    def acquire(self) -> None:
        """Take the lock or raise `RunInUse` (also when this process holds it already: one run per directory)."""
        for _ in range(10):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                os.close(fd)
                if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise RunInUse(
                        f"{self.path.parent} is in use by {self.holder()} (it holds {self.path.name}); "
                        "wait for it to finish or stop it"
                    ) from None
                raise RunInUse(
                    f"cannot lock {self.path}: {err.strerror}; put the run directory on a local filesystem"
                ) from None
            if self._still_linked(fd):
                break
            os.close(fd)  # the previous holder removed the file after we opened it: lock the new one
        else:
            raise RunInUse(f"could not take {self.path} (another process keeps re-creating it)")
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
        _HELD[self.key] = fd
        atexit.register(self.release)

    def _still_linked(self, fd: int) -> bool:
        try:
            return os.stat(self.path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            return False

    def release(self) -> None:
        """Remove the file (while still holding the lock, so no one locks a dead inode) and unlock."""
        fd = _HELD.pop(self.key, None)
        if fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        except OSError:
            pass  # a read-only or vanished directory: the kernel lock is what matters
        os.close(fd)
