"""Issue 17 item 6: the home is 0700 and every file Ironspire writes is 0600, so other users of
the machine read neither conversations, nor the ledger, nor health details."""

from __future__ import annotations

import stat
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.sqlite_only("the modes of the SQLite file and its WAL; health and data live in PostgreSQL there")
async def test_home_and_every_file_written_are_owner_only(open_ws: Any, tmp_path: Path) -> None:
    import os

    old = os.umask(0o022)  # the usual default: without care files come out 0644
    try:
        home = tmp_path / "home"
        ws = open_ws(home)
        ws.create_agent("a")
        ws.export(tmp_path / "out" / "export.json")
        ws.backup(tmp_path / "out" / "backup.db")
        ws.analytics.turns_csv(tmp_path / "out" / "turns.csv")
        other = open_ws(tmp_path / "restored")
        other.import_(tmp_path / "out" / "backup.db")
        other.close()
        await ws.aclose()
    finally:
        os.umask(old)
    assert _mode(home) == 0o700
    written = [p for p in [*home.rglob("*"), *(tmp_path / "out").rglob("*"), *(tmp_path / "restored").rglob("*")]
               if p.is_file()]
    assert {p.name for p in written} >= {"ironspire.db", "export.json", "backup.db", "turns.csv", "agent-1.lock"}
    assert any(p.parent.name == "backups" for p in written)
    assert {str(p): oct(_mode(p)) for p in written if _mode(p) != 0o600} == {}


@pytest.mark.sqlite_only("the modes of the SQLite file and its WAL; health and data live in PostgreSQL there")
def test_an_existing_world_readable_home_is_tightened(open_ws: Any, tmp_path: Path) -> None:
    home = tmp_path / "home"
    open_ws(home).close()
    home.chmod(0o755)
    (home / "ironspire.db").chmod(0o644)
    open_ws(home).close()
    assert _mode(home) == 0o700 and _mode(home / "ironspire.db") == 0o600
