"""Cross-process locks for the SQLite store: one lock file per agent, next to the database.

The OS releases a file lock when its process dies (kill -9 included), so a crashed CLI never
leaves an agent locked. Waiting polls a non-blocking attempt from the event loop instead of
parking a thread in a blocking call: a cancelled turn stops waiting at once and cannot leave a
thread behind that takes the lock later. A PostgreSQL store would use an advisory lock instead.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _try_lock(fd: int) -> bool:
        os.lseek(fd, 0, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


class FileLock:
    """An exclusive lock between processes (inside one process, callers serialise first).

    The file is opened for each acquisition and closed at release, so a process with thousands
    of agents holds a descriptor only for the turns in flight.
    """

    def __init__(self, path: str | Path) -> None:
        self._name = str(path)  # text: an agent's first turn makes its lock, and a Path costs more
        self._fd: int | None = None

    @property
    def path(self) -> Path:
        return Path(self._name)

    def create(self) -> None:
        """Makes the lock file now (when the agent is created), so a turn only opens it."""
        os.close(self._open())

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)

    def _open(self) -> int:
        try:
            return os.open(self._name, os.O_RDWR | os.O_CREAT, 0o600)
        except FileNotFoundError:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(self._name, os.O_RDWR | os.O_CREAT, 0o600)

    async def acquire(self) -> None:
        fd = self._open()
        try:
            delay = 0.001
            while not _try_lock(fd):
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.05)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            _unlock(fd)
            os.close(fd)
