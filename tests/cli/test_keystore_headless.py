"""A real user on headless Linux: no Secret Service, no keyring configuration, no test backend.
`ironspire` runs as a separate process, exactly as typed in a shell."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.http_stub import Reply, Seen, StubServer

KEY = "sk-headless-canary-5e1f77"
PASSPHRASE = "tide pool lantern 42"


@pytest.fixture
def headless(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.delenv("PYTHON_KEYRING_BACKEND")
    for name in ("DBUS_SESSION_BUS_ADDRESS", "IRONSPIRE_KEYRING", "IRONSPIRE_KEYRING_PASSPHRASE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))  # no keyringrc.cfg
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    from ironspire.credentials import _detect_keychain

    backend, info = _detect_keychain()
    if backend is not None:
        pytest.skip(f"this machine has a keychain ({info.name}); the test is about machines without one")
    return dict(os.environ)


def ironspire(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ironspire.cli", *args], env=env, input=stdin, text=True,
                          capture_output=True, timeout=60)


def holders(home: Path, text: str) -> list[Path]:
    return [p for p in home.rglob("*") if p.is_file() and text.encode() in p.read_bytes()]


async def test_set_key_without_a_keychain_then_with_the_encrypted_file(
    headless: dict[str, str], isolated_env: Path, tmp_path: Path
) -> None:
    refused = await asyncio.to_thread(ironspire, headless, "providers", "set-key", "openai", stdin=KEY + "\n")
    assert refused.returncode == 1
    assert "no keychain" in refused.stderr and "headless Linux" in refused.stderr
    assert "IRONSPIRE_KEYRING_PASSPHRASE" in refused.stderr.replace("\n", "")
    assert KEY not in refused.stdout + refused.stderr
    assert not (isolated_env / "credentials.cfg").exists() and not (tmp_path / "data").exists()

    unlocked = {**headless, "IRONSPIRE_KEYRING_PASSPHRASE": PASSPHRASE}
    stored = await asyncio.to_thread(ironspire, unlocked, "providers", "set-key", "openai", stdin=KEY + "\n")
    assert stored.returncode == 0, stored.stderr
    out = "".join(stored.stdout.split())  # Rich wraps long lines
    assert "Nokeychain:" in out and "usingtheencryptedcredentialfile" in out and "sk-…1f77" in out
    assert KEY not in stored.stdout + stored.stderr
    cfg = isolated_env / "credentials.cfg"
    assert cfg.is_file() and oct(cfg.stat().st_mode)[-3:] == "600"
    # one Argon2id-keyed AES-GCM blob: not even the provider's name is readable
    document = json.loads(cfg.read_text())
    assert (document["kdf"]["name"], document["cipher"]) == ("argon2id", "AES-256-GCM")
    assert b"openai" not in cfg.read_bytes()
    # nothing in plain text: not the encrypted file, not the database, not anywhere else
    assert not holders(isolated_env, KEY)
    assert not (tmp_path / "data").exists()  # keyring's own plaintext file was never created

    listed = await asyncio.to_thread(ironspire, unlocked, "providers", "list", "--json")
    openai = next(p for p in json.loads(listed.stdout) if p["id"] == "openai")["auth"][0]
    assert (openai["source"], openai["store"], openai["masked"]) == ("keychain", "encrypted-file", "sk-…1f77")
    table = await asyncio.to_thread(ironspire, unlocked, "providers", "list")
    assert "encrypted file" in table.stdout and KEY not in table.stdout

    locked = await asyncio.to_thread(ironspire, headless, "providers", "list")
    assert locked.returncode == 1 and "locked" in locked.stderr and "IRONSPIRE_KEYRING_PASSPHRASE" in locked.stderr

    # a later `ask` sends exactly that key to the provider
    def answer(seen: Seen) -> Reply:
        if seen.method == "GET":
            return Reply(200, {"object": "list", "data": []})
        return Reply(200, "data: " + json.dumps({"id": "c", "object": "chat.completion.chunk", "model": "m",
                     "choices": [{"index": 0, "delta": {"content": "pong"}, "finish_reason": "stop"}]})
                     + "\n\ndata: [DONE]\n\n", {"content-type": "text/event-stream"})

    async with StubServer(resolver=answer) as s:
        for args in (("providers", "set", "openai", "base_url", s.url + "/v1"),
                     ("agents", "create", "bot", "--provider", "openai", "--model", "gpt-4.1")):
            assert (await asyncio.to_thread(ironspire, unlocked, *args)).returncode == 0
        asked = await asyncio.to_thread(ironspire, unlocked, "ask", "bot", "hello")
    assert asked.returncode == 0, asked.stderr
    assert asked.stdout.strip() == "pong" and KEY not in asked.stdout + asked.stderr
    assert [r.headers["authorization"] for r in s.seen] == [f"Bearer {KEY}"] * 2  # health check, then turn
    assert [r.method for r in s.seen] == ["GET", "POST"]
