"""Health as a user meets it: real agent turns against loopback servers change it at once, the
next command (`agents list`, `ask`) warns about it, a chat session re-checks in the background,
and disabling a provider forgets everything known about it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ironspire.cli.app import app
from ironspire.errors import AuthenticationError, RateLimitError
from ironspire.health import HealthState
from ironspire.transport import RetryPolicy, Transport
from support.http_stub import Reply, Seen, StubServer
from support.memory_keyring import MemoryKeyring, use_memory_keyring

PONG = {"id": "c1", "object": "chat.completion", "model": "m", "choices": [
    {"index": 0, "message": {"role": "assistant", "content": "pong"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}}


SSE_PONG = "".join(f"data: {json.dumps(chunk)}\n\n" for chunk in (
    {"id": "c1", "object": "chat.completion.chunk", "model": "m",
     "choices": [{"index": 0, "delta": {"role": "assistant", "content": "pong"}, "finish_reason": None}]},
    {"id": "c1", "object": "chat.completion.chunk", "model": "m",
     "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
)) + "data: [DONE]\n\n"


@pytest.fixture
def keychain(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[MemoryKeyring]]:
    yield from use_memory_keyring(monkeypatch)


class Switchable:
    """A provider whose chat answers change when the test says so; model listings stay fine."""

    def __init__(self) -> None:
        self.chat = Reply(200, PONG)
        self.models = Reply(200, {"object": "list", "data": [{"id": "served-model", "object": "model"}]})

    def __call__(self, seen: Seen) -> Reply:
        if seen.method == "GET":
            return self.models
        if self.chat.status == 200 and json.loads(seen.body).get("stream"):
            return Reply(200, SSE_PONG, {"content-type": "text/event-stream"})
        return self.chat


async def until(condition: Callable[[], bool], limit: float = 20.0) -> None:
    for _ in range(int(limit / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)


def cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


async def test_real_turns_set_rate_limited_and_invalid_key_then_the_next_commands_warn(
    keychain: type[MemoryKeyring],
) -> None:
    from ironspire.cli._workspace import agent_record
    from ironspire.workspace import Workspace

    openai, groq = Switchable(), Switchable()
    async with StubServer(resolver=openai) as a, StubServer(resolver=groq) as b:
        ws = Workspace.open(transport=Transport(retry=RetryPolicy(attempts=1)))
        try:
            ws.set_provider_setting("openai", "base_url", a.url + "/v1")
            ws.set_provider_setting("groq", "base_url", b.url + "/openai/v1")
            ws.credentials.set("openai", "api_key", "sk-session-openai-0001")
            ws.credentials.set("groq", "api_key", "gsk_session_groq_0002")
            groq_model = "llama-3.3-70b-versatile"  # groq lists its models at runtime
            writer = ws.create_agent("writer", provider="openai", model="gpt-4.1")
            helper = ws.create_agent("helper", provider="groq", model=groq_model)

            assert (await writer.send("first question")).text == "pong"
            assert ws.health.status("openai").state is HealthState.REACHABLE

            openai.chat = Reply(429, {"error": {"message": "Rate limit reached for gpt-4.1", "type": "requests"}},
                                {"retry-after": "1"})
            with pytest.raises(RateLimitError):
                await writer.send("second question")
            limited = ws.health.status("openai")
            assert limited.state is HealthState.RATE_LIMITED and limited.until is not None
            assert 0.5 < (limited.until - limited.checked_at).total_seconds() <= 1.0
            warning = agent_record(ws, writer)["warning"]
            assert warning is not None and "openai is rate limited" in warning
            assert agent_record(ws, helper)["warning"] is None
            await asyncio.sleep(1.1)  # the reset time passes: the state reverts by itself
            assert ws.health.status("openai").state is HealthState.REACHABLE
            assert agent_record(ws, writer)["warning"] is None

            openai.chat = Reply(401, {"error": {"message": "Incorrect API key provided: sk-ses***0001",
                                                "type": "invalid_request_error", "code": "invalid_api_key"}})
            with pytest.raises(AuthenticationError):
                await writer.send("third question")
            assert ws.health.status("openai").state is HealthState.INVALID_KEY

            # the next commands are other processes: they learn it from the state kept in IRONSPIRE_HOME
            listed = await asyncio.to_thread(cli, "agents", "list", "--json")
            assert listed.exit_code == 0, listed.output
            warnings = {r["name"]: r["warning"] for r in json.loads(listed.stdout)}
            assert warnings["helper"] is None
            assert warnings["writer"] is not None and "openai is invalid key" in warnings["writer"]
            assert "Incorrect API key provided" in warnings["writer"]
            table = await asyncio.to_thread(cli, "agents", "list")
            assert "invalid key" in table.stdout

            # `ask` says it before sending (the server still takes the request and answers)
            openai.chat = Reply(200, PONG)
            posts = len([r for r in a.seen if r.method == "POST"])
            asked = await asyncio.to_thread(cli, "ask", "writer", "anyway?", "--no-check")
            assert asked.exit_code == 0, asked.output
            assert "warning: openai is invalid key" in asked.stderr and asked.stdout.strip() == "pong"
            assert asked.output.index("warning: openai is invalid key") < asked.output.index("pong")
            assert len([r for r in a.seen if r.method == "POST"]) == posts + 1

            # reassigning the agent on the unhealthy provider to a healthy one keeps its history
            before = [m.text for m in writer.history]
            assert before[:2] == ["first question", "pong"]
            writer.switch("groq", groq_model)
            assert agent_record(ws, writer)["warning"] is None
            assert (await writer.send("fourth question")).text == "pong"
            sent = json.loads([r for r in b.seen if r.method == "POST"][-1].body)
            texts = [m["content"] for m in sent["messages"] if isinstance(m.get("content"), str)]
            assert texts[:2] == ["first question", "pong"] and texts[-1] == "fourth question"
            assert [m.text for m in ws.agent("writer").history][:2] == ["first question", "pong"]
        finally:
            await ws.aclose()


async def test_disable_enable_closes_the_pool_and_forgets_health_and_discovered_models(
    keychain: type[MemoryKeyring],
) -> None:
    from ironspire.catalog.discovery import CACHE, install
    from ironspire.workspace import Workspace
    from support.listing import discover  # a transport of its own: this test is about what ws forgets

    groq = Switchable()
    async with StubServer(resolver=groq) as s:
        ws = Workspace.open()
        try:
            base = s.url + "/openai/v1"
            ws.set_provider_setting("groq", "base_url", base)
            ws.credentials.set("groq", "api_key", "gsk_disable_enable_0003")
            assert (await ws.health.check(["groq"]))["groq"].healthy  # type: ignore[attr-defined]
            assert ws.transport.has_pool("groq")
            found = await discover(ws.provider("groq"), base, "gsk_disable_enable_0003")
            install(ws.registry, found)
            assert "served-model" in {m.id for m in ws.registry.list(provider="groq")}
            assert any(k[0] == "groq" for k in CACHE._entries)

            await ws.disable("groq")
            assert not ws.transport.has_pool("groq")
            assert ws.health.status("groq").state is HealthState.DISABLED
            assert "served-model" not in {m.id for m in ws.registry.list(provider="groq")}
            assert not any(k[0] == "groq" for k in CACHE._entries)
            ws.health.observe("groq", None, 0.01)  # traffic still in flight is not recorded for it
            assert ws.health.status("groq").state is HealthState.DISABLED

            await ws.enable("groq")
            assert ws.health.status("groq").state is HealthState.UNKNOWN
            assert not ws.transport.has_pool("groq")
            assert "served-model" not in {m.id for m in ws.registry.list(provider="groq")}
            listed = len([r for r in s.seen if r.method == "GET"])
            again = await discover(ws.provider("groq"), base, "gsk_disable_enable_0003")
            assert not again.cached and len([r for r in s.seen if r.method == "GET"]) == listed + 1
        finally:
            await ws.aclose()
    # the state kept for later commands was forgotten too
    state = json.loads((ws.home / "health.json").read_text())
    assert "groq" not in state


async def test_chat_session_rechecks_in_the_background_at_the_configured_interval(tmp_path: Path) -> None:
    """`ironspire chat` in a real process: while the user is idle the monitor keeps probing the
    configured providers (and only those); when the server starts refusing the key, the next
    message is preceded by the warning."""
    openai = Switchable()
    async with StubServer(resolver=openai) as s:
        env = {**os.environ, "OPENAI_API_KEY": "sk-chat-monitor-0004"}

        def run(*args: str) -> None:
            subprocess.run([sys.executable, "-m", "ironspire.cli", *args], env=env, check=True,
                           capture_output=True, timeout=60)

        await asyncio.to_thread(run, "providers", "set", "openai", "base_url", s.url + "/v1")
        await asyncio.to_thread(run, "providers", "health-interval", "0.3")
        await asyncio.to_thread(run, "agents", "create", "bot", "--provider", "openai", "--model", "gpt-4.1")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ironspire.cli", "chat", "bot", env=env, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stdin is not None
        try:
            def probes() -> list[Seen]:
                return [r for r in s.seen if r.method == "GET"]

            await until(lambda: len(probes()) >= 3)
            assert len(probes()) >= 3, "the monitor did not re-check while the session was idle"
            first = probes()[0]
            assert {r.path for r in probes()} == {"/v1/models"}  # only the configured provider
            assert first.headers["authorization"] == "Bearer sk-chat-monitor-0004"

            openai.models = Reply(401, {"error": {"message": "Incorrect API key provided",
                                                  "code": "invalid_api_key"}})
            seen = len(probes())
            await until(lambda: len(probes()) >= seen + 2)
            assert len(probes()) >= seen + 2
            proc.stdin.write(b"hello\n/exit\n")
            await proc.stdin.drain()
            out, err = await asyncio.wait_for(proc.communicate(), 20)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert proc.returncode == 0, err.decode()
    assert "warning: openai is invalid key" in err.decode()
    assert "warning: openai is invalid key" in err.decode()
    assert "pong" in out.decode(), err.decode()  # the message was still sent after the warning
