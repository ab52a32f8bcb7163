"""Issue 17 item 7: a response has bounds. An endless stream, one giant SSE line, output far
past max_tokens and a turn past its wall time each stop the turn cleanly (ProviderUnavailable,
history as before, the message kept as unanswered); a too-large reply is never committed; and a
history can be trimmed, reset or its agent deleted (API and CLI, each asking first)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from typer.testing import CliRunner

from ironspire.errors import ProviderUnavailable
from ironspire.workspace import Workspace


def _chunk(text: str) -> bytes:
    return b"data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": text}}]}).encode() + b"\n\n"


@asynccontextmanager
async def answering(head: bytes, body: Callable[[asyncio.StreamWriter], Any]) -> AsyncIterator[tuple[str, list[int]]]:
    """A server on 127.0.0.1 answering every request with ``head`` then what ``body`` writes;
    yields its URL and a list that counts the requests it received."""
    seen: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in request.split(b"\r\n")
                       if line.lower().startswith(b"content-length")), 0)
        await reader.readexactly(length)
        seen.append(1)
        writer.write(head)
        try:
            await body(writer)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1", seen
    finally:
        server.close()


@asynccontextmanager
async def streaming(body: Callable[[asyncio.StreamWriter], Any]) -> AsyncIterator[str]:
    """An OpenAI-style server on 127.0.0.1 whose streamed body ``body`` writes (forever, if it likes)."""
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"
    async with answering(head, body) as (url, _):
        yield url


async def endless(writer: asyncio.StreamWriter) -> None:
    while True:
        writer.write(_chunk("all work and no play " * 50))
        await writer.drain()


async def endless_padding(writer: asyncio.StreamWriter) -> None:
    """Chunks with nothing for the reply: only the byte cap can stop them."""
    while True:
        writer.write(b"data: " + json.dumps({"choices": [{"index": 0, "delta": {}}], "pad": "z" * 4000}).encode()
                     + b"\n\n")
        await writer.drain()


async def one_giant_line(writer: asyncio.StreamWriter) -> None:
    writer.write(b'data: {"choices": [{"index": 0, "delta": {"content": "')
    while True:
        writer.write(b"x" * 65536)
        await writer.drain()


async def dripping(writer: asyncio.StreamWriter) -> None:
    while True:
        writer.write(_chunk("."))
        await writer.drain()
        await asyncio.sleep(0.02)


async def _agent(ws: Workspace, url: str) -> Any:
    ws.set_provider_setting("openai", "base_url", url)
    ws.credentials.set("openai", "api_key", "sk-caps-test-0123456789")
    agent = ws.create_agent("a", "openai", "gpt-4.1")
    from ironspire.messages import Message

    ws.store.replace_history(agent.id, [("user", Message.user("before").to_json())])
    return agent


async def _fails_cleanly(agent: Any, match: str, **options: Any) -> None:
    with pytest.raises(ProviderUnavailable, match=match):
        async for _ in agent.stream("go", **options):
            pass
    assert [m.text for m in agent.history] == ["before"]
    assert [(e.message.text, e.status) for e in agent.transcript()] == [("before", "ok"), ("go", "unanswered")]


async def test_an_endless_stream_is_stopped_at_the_byte_cap(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    from ironspire.protocols import framing

    monkeypatch.setattr(framing, "MAX_STREAM_BYTES", 2 * 2**20)
    async with streaming(endless_padding) as url:
        agent = await _agent(ws, url)
        await _fails_cleanly(agent, "passed 2 MiB")


async def test_a_giant_sse_line_is_stopped(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    from ironspire.protocols import framing

    monkeypatch.setattr(framing, "MAX_STREAM_BYTES", 4 * 2**20)
    async with streaming(one_giant_line) as url:
        agent = await _agent(ws, url)
        await _fails_cleanly(agent, "passed 4 MiB")


async def test_output_far_past_max_tokens_is_stopped(ws: Workspace) -> None:
    async with streaming(endless) as url:
        agent = await _agent(ws, url)
        await _fails_cleanly(agent, "far past max_tokens", max_tokens=100)


async def test_a_turn_past_its_wall_time_is_stopped(ws: Workspace) -> None:
    ws.set_setting("max_turn_seconds", 0.5)
    async with streaming(dripping) as url:
        agent = await _agent(ws, url)
        await _fails_cleanly(agent, "max_turn_seconds")


async def test_a_reply_past_max_reply_bytes_is_not_committed(ws: Workspace) -> None:
    ws.set_setting("max_reply_bytes", 4096)

    async def big(writer: asyncio.StreamWriter) -> None:
        finish = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        writer.write(_chunk("y" * 10_000) + b"data: " + json.dumps(finish).encode() + b"\n\ndata: [DONE]\n\n")
        await writer.drain()

    async with streaming(big) as url:
        agent = await _agent(ws, url)
        await _fails_cleanly(agent, "max_reply_bytes")


def test_history_can_be_trimmed_reset_and_the_agent_deleted(ws: Workspace) -> None:
    from ironspire.messages import Message

    agent = ws.create_agent("big")
    ws.store.replace_history(agent.id, [("user", Message.user(str(i)).to_json()) for i in range(6)])
    assert agent.drop_last(2) == 2 and [m.text for m in agent.history] == ["0", "1", "2", "3"]
    with pytest.raises(Exception, match="1 or more"):
        agent.drop_last(0)
    assert agent.reset() == 4 and agent.history == []
    ws.delete_agent("big")
    assert ws.agents() == []


def test_the_cli_asks_before_trimming_resetting_or_deleting(isolated_env: Any) -> None:
    from ironspire.cli.app import app
    from ironspire.messages import Message

    runner = CliRunner()
    ws = Workspace.open()
    agent = ws.create_agent("big")
    ws.store.replace_history(agent.id, [("user", Message.user(str(i)).to_json()) for i in range(6)])
    ws.close()
    for args in (["history", "big", "--drop-last", "2"], ["agents", "reset", "big"], ["agents", "delete", "big"]):
        refused = runner.invoke(app, args, input="n\n")
        assert refused.exit_code == 1 and "Nothing was changed" in refused.output
    assert len(json.loads(runner.invoke(app, ["history", "big", "--json"]).output)) == 6
    assert "2 messages deleted" in runner.invoke(app, ["history", "big", "--drop-last", "2"], input="y\n").output
    assert "4 messages deleted" in runner.invoke(app, ["agents", "reset", "big", "--yes"]).output
    assert "Deleted big" in runner.invoke(app, ["agents", "delete", "big", "--yes"]).output
    assert json.loads(runner.invoke(app, ["agents", "list", "--json"]).output) == []


def test_history_is_paginated_newest_first_and_show_only_counts(ws: Workspace, isolated_env: Any) -> None:
    from ironspire import views
    from ironspire.messages import Message

    agent = ws.create_agent("long")
    ws.store.replace_history(agent.id, [("user", Message.user(str(i)).to_json()) for i in range(120)])
    page = views.history(ws, "long", limit=50)
    assert [e.message.text for e in page] == [str(i) for i in range(70, 120)]  # the newest 50, in order
    assert len(views.history(ws, "long")) == 120
    assert views.agent(ws, "long", detail=True).messages == 120
    assert ws.store.message_counts(agent.id) == {"ok": 120}


def test_the_history_command_pages_by_default(isolated_env: Any) -> None:
    from ironspire.cli.app import app
    from ironspire.messages import Message

    ws = Workspace.open()
    agent = ws.create_agent("long")
    ws.store.replace_history(agent.id, [("user", Message.user(str(i)).to_json()) for i in range(120)])
    ws.close()
    runner = CliRunner()
    shown = json.loads(runner.invoke(app, ["history", "long", "--json"]).output)
    assert [e["parts"][0]["text"] for e in shown] == [str(i) for i in range(70, 120)]
    assert len(json.loads(runner.invoke(app, ["history", "long", "--json", "--limit", "5"]).output)) == 5
    assert len(json.loads(runner.invoke(app, ["history", "long", "--json", "--all"]).output)) == 120


async def endless_json(writer: asyncio.StreamWriter) -> None:
    writer.write(b'{"choices": [{"index": 0, "message": {"role": "assistant", "content": "')
    while True:
        writer.write(b"y" * 65536)
        await writer.drain()


@pytest.mark.parametrize("head", [
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n",  # no length: read to the end
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 99999999999\r\n\r\n",  # declared huge
], ids=["unbounded", "declared"])
@pytest.mark.parametrize("client", ["aiohttp", "httpx2"])
async def test_a_non_streamed_body_is_capped_while_it_is_read(ws: Workspace, monkeypatch: pytest.MonkeyPatch,
                                                              head: bytes, client: str) -> None:
    """An endless (or declared-endless) non-streamed answer is stopped at MAX_BODY_BYTES, not read
    whole into memory; the turn fails cleanly, is not retried, and the history is as before."""
    from ironspire import http

    monkeypatch.setattr(http, "MAX_BODY_BYTES", 2 * 2**20)
    monkeypatch.setenv(http.CLIENT_ENV, client)
    async with answering(head, endless_json) as (url, seen):
        agent = await _agent(ws, url)
        with pytest.raises(ProviderUnavailable, match="passed 2 MiB"):
            await agent.send("go")
        assert seen == [1]  # the same server would send it again: no retry
    assert [m.text for m in agent.history] == ["before"]
    assert [(e.message.text, e.status) for e in agent.transcript()] == [("before", "ok"), ("go", "unanswered")]
