"""Where Ironspire keeps its state: IRONSPIRE_HOME, else the platform's user-data directory.

Everything the product writes goes below this one directory, so a user can back it up,
move it or delete it, and tests can point it at a temporary folder.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import IO, Any

#: what Ironspire's state may be read by: its owner only (the home 0700, each file 0600)
DIR_MODE, FILE_MODE = 0o700, 0o600


def home() -> Path:
    configured = os.environ.get("IRONSPIRE_HOME")
    if configured:
        path = Path(configured).expanduser()
    else:
        from platformdirs import user_data_dir

        path = Path(user_data_dir("ironspire", appauthor=False))
    return private_dir(path)


def private_dir(path: Path) -> Path:
    """Makes the directory (0700), or tightens one group- or world-accessible that holds Ironspire
    state: a conversation, a ledger or health details are nobody else's business."""
    if not path.is_dir():
        path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    mode = stat.S_IMODE(path.stat().st_mode)
    if (mode & 0o077 and (path / "ironspire.db").exists()) or not any(path.iterdir()):
        path.chmod(mode & ~0o077 | 0o700)
    return path


def private(path: Path) -> Path:
    """Creates the file empty if missing, and makes it readable by its owner only (0600)."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE))
    if stat.S_IMODE(path.stat().st_mode) != FILE_MODE:
        path.chmod(FILE_MODE)
    return path


def open_private(path: Path, **kwargs: Any) -> IO[str]:
    """``path.open("w")`` for a file only its owner may read (0600 from its first byte)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    if stat.S_IMODE(os.fstat(fd).st_mode) != FILE_MODE:
        os.fchmod(fd, FILE_MODE)
    handle: IO[str] = os.fdopen(fd, "w", **kwargs)
    return handle


def write_private(path: Path, text: str) -> None:
    with open_private(path, encoding="utf-8") as fh:
        fh.write(text)
