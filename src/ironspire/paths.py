"""Where Ironspire keeps its state: IRONSPIRE_HOME, else the platform's user-data directory.

Everything the product writes goes below this one directory, so a user can back it up,
move it or delete it, and tests can point it at a temporary folder.
"""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    configured = os.environ.get("IRONSPIRE_HOME")
    if configured:
        path = Path(configured).expanduser()
    else:
        from platformdirs import user_data_dir

        path = Path(user_data_dir("ironspire", appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path
