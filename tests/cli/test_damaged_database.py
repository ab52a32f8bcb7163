"""Issue 17 item 13: a damaged database (garbage, truncated, a corrupt page, a missing table, a
directory) and input that is not UTF-8 each give a clear error, never a traceback; a database
error names the file and says how to restore it."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from ironspire.messages import Message


def _run(home: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "IRONSPIRE_HOME": str(home), "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring"}
    return subprocess.run([sys.executable, "-m", "ironspire.cli", *args], capture_output=True, env=env,
                          input=stdin, timeout=60)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    from ironspire.workspace import Workspace

    home = tmp_path / "home"
    ws = Workspace.open(home)
    agent = ws.create_agent("a")
    ws.store.replace_history(agent.id, [("user", Message.user(f"message {i} " + "x" * 500).to_json())
                                        for i in range(200)])
    ws.close()
    return home


def _damage(db: Path, how: str) -> None:
    for extra in ("-wal", "-shm"):
        Path(f"{db}{extra}").unlink(missing_ok=True)
    data = db.read_bytes()
    if how == "garbage":
        db.write_bytes(os.urandom(len(data)))
    elif how == "truncated":
        db.write_bytes(data[: len(data) // 3])
    elif how == "corrupt page":
        page = int.from_bytes(data[16:18], "big")
        db.write_bytes(data[: page * 3] + b"\xde\xad" * (page * 4) + data[page * 11:])
    elif how == "missing table":
        con = sqlite3.connect(db)
        con.execute("DROP TABLE messages")
        con.commit()
        con.close()
    elif how == "directory":
        db.unlink()
        db.mkdir()


@pytest.mark.parametrize("how", ["garbage", "truncated", "corrupt page", "missing table", "directory"])
def test_a_damaged_database_is_a_clear_error_naming_the_file(home: Path, how: str) -> None:
    db = home / "ironspire.db"
    _damage(db, how)
    for args in (("agents", "list"), ("history", "a", "--all")):
        out = _run(home, *args)
        err = out.stderr.decode()
        assert out.returncode == 1, (args, err)
        assert "Traceback" not in err and str(db) in err.replace("\n", "") and "backup" in err, err


def test_input_that_is_not_utf8_is_a_clear_error(home: Path) -> None:
    argv = _run(home, "ask", "a", os.fsdecode(b"caf\xe9 au lait"))
    stdin = _run(home, "ask", "a", "-", stdin=b"caf\xe9 au lait\n")
    for out in (argv, stdin):
        err = out.stderr.decode()
        assert out.returncode == 2 and "not valid UTF-8" in err and "Traceback" not in err, err
