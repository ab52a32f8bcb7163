"""`ironspire chat` driven as a user drives it: a real process, its stdin a pipe we type into,
its stdout read as it is written. Two loopback providers: OpenAI format, then (after
`/switch`) Ollama format. The reply must appear while the server is still holding the rest
of it back (streaming, not a buffered print), the switch must keep the history, `/exit` must
end the process with stdin still open, and `ironspire history` must show every turn with the
provider that produced it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ironspire.workspace import Workspace
from workspace.loopback import Server, serving

CLI = [sys.executable, "-m", "ironspire.cli"]


class Session:
    """A running `ironspire chat`, with what it has printed so far."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([*CLI, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env, bufsize=0)
        self.out, self.err = bytearray(), bytearray()
        self._lock = threading.Lock()
        for stream, buf in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=self._pump, args=(stream, buf), daemon=True).start()

    def _pump(self, stream: object, buf: bytearray) -> None:
        read = getattr(stream, "read")  # noqa: B009
        while chunk := read(1):
            with self._lock:
                buf.extend(chunk)

    @property
    def stdout(self) -> str:
        with self._lock:
            return self.out.decode()

    @property
    def stderr(self) -> str:
        with self._lock:
            return self.err.decode()

    def wait_for(self, text: str, *, after: int = 0, timeout: float = 20) -> int:
        """Waits until ``text`` is printed past offset ``after``; returns where it ends."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            at = self.stdout.find(text, after)
            if at >= 0:
                return at + len(text)
            if self.proc.poll() is not None:
                break
            time.sleep(0.01)
        raise AssertionError(f"{text!r} not printed; stdout={self.stdout!r} stderr={self.stderr!r}")

    def type(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()


@pytest.fixture
def env(isolated_env: Path) -> Iterator[dict[str, str]]:
    yield {**os.environ, "OPENAI_API_KEY": "sk-test-chat-session-000", "PYTHONUNBUFFERED": "1"}


def _cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_chat_streams_switches_and_exits_then_history_shows_both_providers(env: dict[str, str]) -> None:
    # the OpenAI-format server sends the role chunk and two words, then holds the rest back
    with serving(Server("oa", hold_after=3), Server("ol")) as (oa, ol):
        ws = Workspace.open()  # set-up in-process; every step the user sees runs in a subprocess
        ws.set_provider_setting("openai", "base_url", oa.url + "/v1")
        ws.set_provider_setting("ollama", "base_url", ol.url)
        ws.create_agent("nomad", provider="openai", model="gpt-4.1", system="Be brief.")
        ws.close()

        chat = Session(["chat", "nomad"], env)
        try:
            pos = chat.wait_for("nomad> ")
            chat.type("hello there")
            pos = chat.wait_for("oa: 2 ", after=pos)  # system + user reached the server
            time.sleep(0.3)  # were the reply buffered, more of it could not appear anyway: it is held back
            assert "last:" not in chat.stdout[pos:] and not oa.gate.is_set()
            oa.gate.set()
            pos = chat.wait_for("messages, last: hello there\n", after=pos)
            pos = chat.wait_for("nomad> ", after=pos)

            chat.type("/switch ollama llama3")
            pos = chat.wait_for("history kept: 2 messages", after=pos)
            pos = chat.wait_for("nomad> ", after=pos)

            chat.type("and now?")
            pos = chat.wait_for("ol: 4 messages, last: and now?\n", after=pos)  # system + 3
            pos = chat.wait_for("nomad> ", after=pos)

            chat.type("/exit")  # stdin stays open: only the command may end the session
            assert chat.proc.wait(20) == 0, chat.stderr
        finally:
            if chat.proc.poll() is None:
                chat.proc.kill()
                chat.proc.wait(5)
            if chat.proc.stdin is not None:
                chat.proc.stdin.close()

    assert oa.requests[0]["body"]["stream"] is True
    assert oa.requests[0]["headers"]["Authorization"] == "Bearer sk-test-chat-session-000"
    sent = ol.requests[-1]["body"]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert sent[2]["content"] == "oa: 2 messages, last: hello there"  # OpenAI's reply, re-encoded for Ollama

    history = json.loads(_cli(env, "history", "nomad", "--json"))
    assert [(m["role"], m.get("provider"), m.get("model"), m["status"]) for m in history] == [
        ("user", None, None, "ok"), ("assistant", "openai", "gpt-4.1", "ok"),
        ("user", None, None, "ok"), ("assistant", "ollama", "llama3", "ok"),
    ]
    human = _cli(env, "history", "nomad")
    assert "assistant (openai/gpt-4.1)" in human and "assistant (ollama/llama3)" in human
    assert human.index("hello there") < human.index("assistant (openai/gpt-4.1)") < human.index("and now?")
    by_provider = json.loads(_cli(env, "analytics", "--by", "provider", "--json"))["by_provider"]
    assert sorted((r["provider"], r["turns"]) for r in by_provider) == [("ollama", 1), ("openai", 1)]
