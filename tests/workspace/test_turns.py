"""Agents talking through the real adapters and transport to loopback servers: routing at
request time, switching with history, one-transaction turns, failure and cancellation."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import pytest

from ironspire.errors import ConfigurationError, ProviderUnavailable
from ironspire.messages import Message, TextDelta
from ironspire.workspace import Workspace
from workspace.loopback import Server, refused_port, serving


def _point(ws: Workspace, pid: str, server: Server | str) -> None:
    url = server if isinstance(server, str) else server.url
    ws.set_provider_setting(pid, "base_url", url + ("/v1" if pid == "openai" else ""))


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-openai-key-000")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-key-000")


def test_agents_inherit_the_default_at_request_time(ws: Workspace) -> None:
    ws.set_default("openai", "gpt-4.1")
    a = ws.create_agent("a")
    b = ws.create_agent("b", provider="claude-api", model="claude-sonnet-5-5")
    c = ws.create_agent("c", model="gpt-4.1-mini")  # model only: stays on the default provider
    assert (a.target().provider.id, a.target().model.id) == ("openai", "gpt-4.1")
    ws.set_default("google", "gemini-3.8-flash")
    assert a.target().model.id == "gemini-3.8-flash" and a.route is not None and a.route.inherited
    assert b.target().model.id == "claude-sonnet-5-5"
    with pytest.raises(Exception, match=r"gpt-4\.1-mini"):
        c.target()  # the default provider moved and does not have that model
    b.inherit()
    assert b.inherits and b.target().provider.id == "google"
    with pytest.raises(ConfigurationError, match="already exists"):
        ws.create_agent("a")


def test_no_default_and_disabled_provider_are_clear_errors(ws: Workspace) -> None:
    a = ws.create_agent("lonely")
    with pytest.raises(ConfigurationError, match="default set"):
        a.target()
    a.switch("ollama", "llama3")
    asyncio.run(ws.disable("ollama"))
    with pytest.raises(ConfigurationError, match="providers enable ollama"):
        a.target()


async def test_send_persists_one_turn_and_ledger_row(ws: Workspace, open_ws: Any, keys: None) -> None:
    with serving(Server("oa")) as (srv,):
        _point(ws, "openai", srv)
        ws.set_default("openai", "gpt-4.1")
        agent = ws.create_agent("coder", system="Be brief.")
        reply = await agent.send("hello")
    assert reply.text == "oa: 2 messages, last: hello"  # system + user reached the server
    assert srv.requests[0]["body"]["messages"][0] == {"role": "developer", "content": "Be brief."} or \
        srv.requests[0]["body"]["messages"][0]["content"] == "Be brief."
    again = open_ws()
    history = again.agent("coder").history
    assert [m.role for m in history] == ["user", "assistant"] and history[1].text == reply.text
    rows = again.analytics.turns()
    again.close()
    assert len(rows) == 1
    row = rows[0]
    price = ws.registry.get("openai", "gpt-4.1").price
    assert (row["input_tokens"], row["cache_read_tokens"], row["output_tokens"]) == (60, 40, 20)
    assert row["cost_usd"] == pytest.approx((60 * price.input + 40 * price.cache_read + 20 * price.output) / 1e6)
    assert row["outcome"] == "ok" and row["agent"] == "coder" and row["provider"] == "openai"


async def test_switching_keeps_history_and_re_encodes_it(ws: Workspace, keys: None) -> None:
    with serving(Server("oa"), Server("an"), Server("ol")) as (oa, an, ol):
        for pid, srv in (("openai", oa), ("claude-api", an), ("ollama", ol)):
            _point(ws, pid, srv)
        agent = ws.create_agent("nomad", provider="openai", model="gpt-4.1", system="You are terse.")
        await agent.send("first")
        agent.switch("claude-api", "claude-sonnet-5-5")
        text = "".join([e.text async for e in agent.stream("second") if isinstance(e, TextDelta)])
        assert text == "an: 3 messages, last: second"
        body = an.requests[0]["body"]
        assert body["system"] in ("You are terse.", [{"type": "text", "text": "You are terse."}])
        assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
        agent.switch("ollama", "llama3")
        reply = await agent.send("third")
        assert reply.text == "ol: 6 messages, last: third"  # system + 5 turns' messages
        assert ol.requests[0]["body"]["messages"][0] == {"role": "system", "content": "You are terse."}
    assert [m.provider for m in agent.history if m.role == "assistant"] == ["openai", "claude-api", "ollama"]
    assert len(agent.history) == 6


async def test_failed_turn_leaves_history_and_marks_message_unanswered(ws: Workspace, keys: None) -> None:
    with serving(Server("oa"), Server("bad", status=500)) as (good, bad):
        _point(ws, "openai", good)
        agent = ws.create_agent("x", provider="openai", model="gpt-4.1")
        await agent.send("one")
        _point(ws, "openai", bad)
        with pytest.raises(ProviderUnavailable):
            await agent.send("two")
        with pytest.raises(ProviderUnavailable):
            [e async for e in agent.stream("two again")]
    assert [m.text for m in agent.history] == ["one", "oa: 1 messages, last: one"]
    assert [m.text for m in ws.agent("x").history] == [m.text for m in agent.history]
    statuses = [(e.message.text, e.status) for e in agent.transcript()]
    assert statuses[2:] == [("two", "unanswered"), ("two again", "unanswered")]
    outcomes = [r["outcome"] for r in ws.analytics.turns()]
    assert outcomes == ["ok", "ProviderUnavailable", "ProviderUnavailable"]


async def test_cancelled_stream_leaves_history(ws: Workspace, keys: None) -> None:
    with serving(Server("slow", mode="endless")) as (srv,):
        _point(ws, "openai", srv)
        agent = ws.create_agent("y", provider="openai", model="gpt-4.1")
        started = asyncio.Event()

        async def consume() -> None:
            async for _ in agent.stream("go"):
                started.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(started.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert agent.history == []
    assert [(e.message.text, e.status) for e in agent.transcript()] == [("go", "unanswered")]
    assert [r["outcome"] for r in ws.analytics.turns()] == ["cancelled"]


async def test_isolation_dead_and_hanging_providers_affect_only_their_agents(ws: Workspace, keys: None) -> None:
    from ironspire.catalog.providers import CustomEndpoint

    with serving(Server("oa", drip=0.01), Server("an"), Server("ol"), Server("stuck", mode="hang")) as (
        oa, an, ol, stuck,
    ):
        _point(ws, "openai", oa)
        _point(ws, "claude-api", an)
        _point(ws, "ollama", ol)
        ws.add_custom_endpoint(CustomEndpoint("dead", f"http://127.0.0.1:{refused_port()}/v1", "m"))
        ws.add_custom_endpoint(CustomEndpoint("stuck", stuck.url + "/v1", "m"))
        ws.set_provider_setting("custom-stuck", "timeout", "0.6")
        fleet = {
            "o1": ("openai", "gpt-4.1"), "o2": ("openai", "gpt-4.1-mini"), "a1": ("claude-api", "claude-haiku-5-5"),
            "l1": ("ollama", "llama3"), "dead": ("custom-dead", "m"), "stuck": ("custom-stuck", "m"),
        }
        for name, (pid, model) in fleet.items():
            ws.create_agent(name, provider=pid, model=model)
        done_at: dict[str, float] = {}
        loop = asyncio.get_running_loop()

        async def turn(name: str, streamed: bool) -> Message:
            agent = ws.agent(name)
            try:
                if streamed:
                    [e async for e in agent.stream(f"hi {name}")]
                    return agent.history[-1]
                return await agent.send(f"hi {name}")
            finally:
                done_at[name] = loop.time()

        results = await asyncio.gather(
            *(turn(n, streamed=i % 2 == 0) for i, n in enumerate(fleet)), return_exceptions=True
        )
    by_name = dict(zip(fleet, results, strict=True))
    for name in ("o1", "o2", "a1", "l1"):
        reply = by_name[name]
        assert isinstance(reply, Message), reply
        assert reply.text.endswith(f"last: hi {name}")
        assert len(ws.agent(name).history) == 2
        assert done_at[name] < done_at["stuck"]  # nobody waited for the hanging provider
    assert isinstance(by_name["dead"], ProviderUnavailable) and "cannot connect" in str(by_name["dead"])
    assert isinstance(by_name["stuck"], ProviderUnavailable) and "timed out" in str(by_name["stuck"])
    assert ws.agent("dead").history == [] and ws.agent("stuck").history == []
    observed = dict(ws.health.observed)  # type: ignore[attr-defined]
    assert observed["custom-dead"] == "ProviderUnavailable" and observed["openai"] is None
    if ws.path is not None:
        con = sqlite3.connect(ws.path)
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        con.close()
    assert ws.store.integrity() == "ok"
