"""Prompt caching and documents as a user meets them: turned on once for the workspace (or asked
for on one turn), sent in each provider's own form to a real server, and the cache read/write
counts the provider reports landing in the ledger.

Bedrock and OpenAI run against loopback HTTP servers on 127.0.0.1 that check the encoded
request; Mistral replays its recorded cache exchange (realdata/mistral/pydantic-ai ...
history_uses_prompt_cache.yaml: the second turn read 224 cached tokens).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from ironspire.messages import Document, Message
from ironspire.protocols.base import PromptCache
from ironspire.workspace import Workspace
from support.recordings import load
from support.replay import Received, ReplayTransport, Server, loopback
from workspace.conftest import FakeHealth
from workspace.loopback import Server as ChatServer
from workspace.loopback import serving

PDF = base64.b64encode(b"%PDF-1.4\n%%EOF\n").decode()


def _converse_answer(received: Received) -> tuple[int, dict[str, str], bytes]:
    body = {"output": {"message": {"role": "assistant", "content": [{"text": "From the brief: page 3."}]}},
            "stopReason": "end_turn",
            "usage": {"inputTokens": 12, "outputTokens": 6, "cacheReadInputTokens": 900,
                      "cacheWriteInputTokens": 100, "totalTokens": 1018}}
    return 200, {"content-type": "application/json"}, json.dumps(body).encode()


async def test_bedrock_cache_points_reach_the_server_and_cache_counts_the_ledger(
    open_ws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLELOOPBACK")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "loopback-secret-key")
    ws: Workspace = open_ws()
    try:
        async with loopback(_converse_answer) as (url, seen):
            ws.set_provider_setting("bedrock", "base_url", url)
            ws.set_setting("prompt_cache", "5m")  # every agent, every provider
            agent = ws.create_agent("briefed", provider="bedrock", model="us.amazon.nova-pro-v1:0",
                                    system="Answer from the brief.")
            reply = await agent.send(Message.user("What is on page 3?",
                                                  Document("application/pdf", data=PDF, name="brief_v2.pdf")))
        rows = ws.analytics.turns()
    finally:
        await ws.aclose()

    (request,) = seen
    assert request.line.startswith("POST /model/us.amazon.nova-pro-v1%3A0/converse ")
    sent = json.loads(request.body)
    point = {"cachePoint": {"type": "default", "ttl": "5m"}}
    assert sent["system"] == [{"text": "Answer from the brief."}, point]
    assert sent["messages"][-1]["content"] == [
        {"text": "What is on page 3?"},
        {"document": {"format": "pdf", "name": "brief v2", "source": {"bytes": PDF}}},
        point,
    ]
    assert reply.text == "From the brief: page 3."
    (row,) = rows
    assert (row["input_tokens"], row["cache_read_tokens"], row["cache_write_tokens"]) == (12, 900, 100)
    assert row["usage_state"] == "reported"


async def test_openai_gets_the_agents_cache_key_and_retention_and_reports_cached_tokens(
    open_ws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-loopback-0123456789")
    ws: Workspace = open_ws()
    try:
        with serving(ChatServer("openai")) as (srv,):
            ws.set_provider_setting("openai", "base_url", srv.url + "/v1")
            ws.set_setting("prompt_cache", "24h")
            agent = ws.create_agent("keyed", provider="openai", model="gpt-4.1")
            await agent.send(Message.user("Read this.", Document("application/pdf", data=PDF, name="r.pdf")))
            other = ws.create_agent("other", provider="openai", model="gpt-4.1")
            await other.send("hello", cache=None)  # one turn without caching
            await other.send("again", cache="24h")  # and one asking by name
        rows = ws.analytics.turns()
    finally:
        await ws.aclose()

    first, second, third = (r["body"] for r in srv.requests)
    assert (third["prompt_cache_key"], third["prompt_cache_retention"]) == (f"ironspire-agent-{other.id}", "24h")
    assert first["prompt_cache_key"] == f"ironspire-agent-{agent.id}"
    assert first["prompt_cache_retention"] == "24h"
    assert first["messages"][-1]["content"][1] == {
        "type": "file", "file": {"filename": "r.pdf", "file_data": f"data:application/pdf;base64,{PDF}"}}
    assert "prompt_cache_key" not in second and "prompt_cache_retention" not in second
    assert [r["cache_read_tokens"] for r in rows] == [40, 40, 40]  # the server's cached_tokens


async def test_anthropic_loopback_receives_the_document_block(open_ws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-loopback-000")
    ws: Workspace = open_ws()
    try:
        with serving(ChatServer("claude")) as (srv,):
            ws.set_provider_setting("claude-api", "base_url", srv.url)
            agent = ws.create_agent("reader", provider="claude-api", model="claude-sonnet-5")
            events = [e async for e in agent.stream(Message.user("Summarise.", Document("application/pdf", data=PDF)))]
        rows = ws.analytics.turns()
    finally:
        await ws.aclose()
    assert events
    blocks = srv.requests[0]["body"]["messages"][-1]["content"]
    assert blocks[1] == {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": PDF}}
    assert rows[0]["cache_read_tokens"] == 200  # the loopback's cache_read_input_tokens


async def test_mistral_recorded_cache_exchange_with_the_neutral_cache_key(
    realdata: Path, tmp_path: Path, memory_keyring: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MISTRAL_API_KEY", "mistral-test-key-000")
    recorded = load(realdata / "mistral" / "pydantic-ai__test_mistral__test_mistral_history_uses_prompt_cache.yaml")
    key = recorded[0].request_json["prompt_cache_key"]
    server = Server(recorded, keep=(), content_type="application/json")
    ws = Workspace.open(tmp_path / "ws", health=FakeHealth, transport=ReplayTransport(server))
    try:
        agent = ws.create_agent("probe", provider="mistral", model="mistral-large-2512")
        for i in range(2):
            question = recorded[i].request_json["messages"][-1]["content"]
            await agent.send(question, cache=PromptCache(key=key))
        rows = sorted(ws.analytics.turns(), key=lambda r: r["at"])
    finally:
        await ws.aclose()
    for body, recorded_item in zip(server.bodies(), recorded, strict=True):
        assert body["prompt_cache_key"] == recorded_item.request_json["prompt_cache_key"]
        assert "prompt_cache_retention" not in body  # Mistral's schema has no such field
    assert [(r["input_tokens"], r["cache_read_tokens"]) for r in rows] == [(253, 0), (44, 224)]


async def test_an_agents_own_cache_setting_wins_over_the_workspace(
    open_ws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-loopback-000")
    ws: Workspace = open_ws()
    try:
        with serving(ChatServer("claude")) as (srv,):
            ws.set_provider_setting("claude-api", "base_url", srv.url)
            ws.set_setting("prompt_cache", "off")
            cached = ws.create_agent("cached", provider="claude-api", model="claude-sonnet-5", system="Brief.")
            plain = ws.create_agent("plain", provider="claude-api", model="claude-sonnet-5", system="Brief.")
            cached.set_prompt_cache("1h")
            assert ws.agent("cached").prompt_cache == "1h" and plain.prompt_cache is None  # stored, re-read
            await cached.send("one")
            await plain.send("two")
            cached.set_prompt_cache(None)  # back to the workspace's (off)
            await cached.send("three")
    finally:
        await ws.aclose()
    bodies = [r["body"] for r in srv.requests]
    mark = {"type": "ephemeral", "ttl": "1h"}
    assert bodies[0]["system"] == [{"type": "text", "text": "Brief.", "cache_control": mark}]
    assert bodies[1]["system"] == "Brief." and bodies[2]["system"] == "Brief."
    with pytest.raises(Exception, match="agent_prompt_cache maps agent ids"):
        ws.set_setting("agent_prompt_cache", {"1": "forever"})
