"""One node per home: an advisory lock on ``<home>/node.lock``.

How this works: ``p2pdm run`` holds an exclusive ``flock`` on the lock file
for as long as it runs and writes its PID into it, so a second ``run`` on the
same home, or ``init --force`` replacing the identity under a running node,
is refused with the PID of the holder. The kernel drops the lock when the
process exits, however it exits, so a crash never leaves a stale lock behind
(the file stays; its content is only a hint for the error message).
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType
from typing import Final

from p2pdm.errors import HomeError

__all__ = ["LOCK_FILE", "HomeLock"]

LOCK_FILE: Final = "node.lock"
#: A PID is a few digits; read no more than this from a lock file.
_MAX_PID_CHARS: Final = 20

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock, no lock
    fcntl = None  # type: ignore[assignment]


class HomeLock:
    """The lock of one home directory; a context manager that raises :class:`HomeError`."""

    def __init__(self, home: Path, doing: str = "start another") -> None:
        self.path = home / LOCK_FILE
        self.home = home
        self.doing = doing
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise HomeError naming the process that holds it."""
        if self._fd is not None:
            raise RuntimeError("lock already held by this object")
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise HomeError(f"cannot open {self.path}: {exc.strerror or exc}") from None
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = _read_pid(fd)
                os.close(fd)
                who = f" (pid {holder})" if holder else ""
                raise HomeError(
                    f"a node is running from {self.home}{who}; stop it before you {self.doing}"
                ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        os.ftruncate(fd, 0)
        os.close(fd)  # closing the descriptor drops the flock

    def __enter__(self) -> HomeLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, _MAX_PID_CHARS, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
