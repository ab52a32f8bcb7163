"""Fallback routes through the real adapters and transport to loopback servers that fail in each
way: which route answers, what each provider received (the same history re-encoded, tool calls
included), what the ledger and the reply record, and that the agent's own route comes first
again at the next turn."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from ironspire.catalog.models import ModelSpec
from ironspire.errors import AuthenticationError, ConfigurationError, ContextWindowExceeded, ProviderUnavailable
from ironspire.messages import Message, Text, TextDelta, ToolResult
from ironspire.protocols.base import Tool
from ironspire.transport import RetryPolicy, Transport
from ironspire.workspace import Workspace
from workspace.loopback import TOOL_ARGUMENTS, TOOL_CALL_ID, Server, refused_port, serving

WEATHER = Tool("get_weather", "Current weather for a city.",
               {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
ANTHROPIC_ID = re.compile(r"^[A-Za-z0-9_-]+$")

OPENAI, ANTHROPIC, GOOGLE = ("openai", "gpt-4.1"), ("claude-api", "claude-sonnet-5-5"), ("google", "gemini-3.8-flash")
CHAIN = "claude-api/claude-sonnet-5-5,google/gemini-3.8-flash"


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-openai-key-000")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-key-000")
    monkeypatch.setenv("GEMINI_API_KEY", "AIza-test-gemini-key-000")


@pytest.fixture
async def real_ws(memory_keyring: Any, tmp_path: Path) -> AsyncIterator[Workspace]:
    """A workspace with the real health monitor (skips follow what traffic showed) and one
    attempt per request (the transport's own retries would hide the flips)."""
    from ironspire.health import HealthMonitor

    ws = Workspace.open(tmp_path / "real", health=HealthMonitor,
                        transport=Transport(RetryPolicy(attempts=1, base_delay=0.01, max_delay=0.05)))
    yield ws
    await ws.aclose()


def point(ws: Workspace, oa: Server | str, an: Server | str, gm: Server | str) -> None:
    url = {k: v if isinstance(v, str) else v.url for k, v in (("oa", oa), ("an", an), ("gm", gm))}
    ws.set_provider_setting("openai", "base_url", url["oa"] + "/v1")
    ws.set_provider_setting("claude-api", "base_url", url["an"])
    ws.set_provider_setting("google", "base_url", url["gm"] + "/v1beta")


def switchable(initial: int = 200) -> tuple[dict[str, int], Callable[[int], int]]:
    state = {"status": initial}
    return state, lambda _index: state["status"]


def ledger(ws: Workspace) -> list[tuple[str, str, str]]:
    return [(r["provider"], r["model"], r["outcome"]) for r in ws.analytics.turns()]


async def test_openai_to_anthropic_to_gemini_with_tool_history(ws: Workspace) -> None:
    oa_state, oa_status = switchable()
    an_state, an_status = switchable()
    with serving(Server("oa", mode="tools", statuses=oa_status), Server("an", statuses=an_status),
                 Server("gm")) as (oa, an, gm):
        point(ws, oa, an, gm)
        agent = ws.create_agent("fleet-1", provider="openai", model="gpt-4.1", system="Be terse.")
        agent.set_fallback(CHAIN)
        assert [str(r) for r in agent.fallback_chain] == CHAIN.split(",")
        call = (await agent.send("Weather in Oslo?", tools=[WEATHER])).tool_calls[0]
        assert call.id == TOOL_CALL_ID
        result = Message.tool(ToolResult(call.id, call.name, (Text("-3C, light snow"),)))
        assert (await agent.send(result, tools=[WEATHER])).text.endswith("tool said: -3C, light snow")
        before = list(agent.history)

        oa_state["status"], an_state["status"] = 503, 429
        reply = await agent.send("And tomorrow?")
        assert reply.text == "gm: 5 contents, last: And tomorrow?"
        assert (reply.provider, reply.model) == GOOGLE  # the route that answered, on the message
        record = reply.meta["fallback"]
        assert record["primary"] == "openai/gpt-4.1" and record["answered"] == "google/gemini-3.8-flash"
        assert [(a["provider"], a["outcome"]) for a in record["attempts"]] == [
            ("openai", "ProviderUnavailable"), ("claude-api", "RateLimitError"), ("google", "ok")]

        # Anthropic received the same history re-encoded as a manual switch does: the call's id
        # made acceptable to it and still paired with its result
        sent = an.requests[-1]["body"]
        assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user", "assistant", "user"]
        use = next(c for m in sent["messages"] if m["role"] == "assistant" and isinstance(m["content"], list)
                   for c in m["content"] if c.get("type") == "tool_use")
        result_block = next(c for m in sent["messages"] if isinstance(m["content"], list)
                            for c in m["content"] if c.get("type") == "tool_result")
        assert ANTHROPIC_ID.match(use["id"]) and result_block["tool_use_id"] == use["id"]
        assert use["input"] == TOOL_ARGUMENTS and "Be terse." in json.dumps(sent["system"])
        # Gemini: function call and response paired by name, the system prompt in its own place
        body = gm.requests[-1]["body"]
        parts = [p for c in body["contents"] for p in c["parts"]]
        fcall = next(p["functionCall"] for p in parts if "functionCall" in p)
        fresp = next(p["functionResponse"] for p in parts if "functionResponse" in p)
        assert fcall["name"] == fresp["name"] == "get_weather" and fcall["args"] == TOOL_ARGUMENTS
        assert "-3C, light snow" in json.dumps(fresp["response"])
        assert body["systemInstruction"]["parts"][0]["text"] == "Be terse."

        # one ledger row per request: the two failed ones, then the one that answered
        # (the transport's own retry of each failure is inside one request's row)
        assert ledger(ws)[2:] == [("openai", "gpt-4.1", "ProviderUnavailable"),
                                  ("claude-api", "claude-sonnet-5-5", "RateLimitError"),
                                  ("google", "gemini-3.8-flash", "ok")]
        assert [a.answered[-1][1] for a in (oa, an)] == [503, 429] and len(gm.requests) == 1
        assert agent.history == [*before, Message.user("And tomorrow?"), reply]
        assert (agent.own_provider, agent.own_model) == OPENAI  # the agent's own route did not change

        # the next turn goes to the primary first again
        oa_state["status"] = 200
        asked = len(oa.requests)
        again = await agent.send("Thanks.")
        assert again.provider == "openai" and "fallback" not in again.meta
        assert len(oa.requests) == asked + 1 and len(gm.requests) == 1
        assert again.text == "oa: 8 messages, last: Thanks."  # system + the seven messages before


@pytest.mark.parametrize(("kind", "status", "code"), [
    ("5xx", 500, "server_error"), ("rate_limited", 429, "rate_limit_exceeded"),
    ("quota", 429, "insufficient_quota"), ("invalid_key", 401, "invalid_api_key"), ("unreachable", None, ""),
])
async def test_each_failure_kind_and_which_ones_trigger(real_ws: Workspace, kind: str, status: int | None,
                                                         code: str) -> None:
    ws = real_ws
    failing = Server("oa", status=status or 200, error_code=code)
    with serving(failing, Server("an"), Server("gm")) as (oa, an, gm):
        point(ws, f"http://127.0.0.1:{refused_port()}" if status is None else oa, an, gm)
        agent = ws.create_agent("a", provider="openai", model="gpt-4.1")
        agent.set_fallback(["claude-api/claude-sonnet-5-5"])
        if kind == "invalid_key":  # a refused key is not hidden by default: the turn fails as it always did
            with pytest.raises(AuthenticationError) as raised:
                await agent.send("hi")
            assert [a.outcome for a in raised.value.attempts] == ["AuthenticationError"]
            assert agent.history == [] and [e.status for e in agent.transcript()] == ["unanswered"]
            assert an.requests == []
            ws.set_setting("fallback_on", ["invalid_key"])
            await ws.health.check(["openai"])  # (the monitor learned the key is bad; clear it by asking again)
        reply = await agent.send("hi again")
        assert reply.provider == "claude-api" and reply.text == "an: 1 messages, last: hi again"
        outcome = {"unreachable": "ProviderUnavailable", "5xx": "ProviderUnavailable", "rate_limited": "RateLimitError",
                   "quota": "RateLimitError", "invalid_key": "AuthenticationError"}[kind]
        assert reply.meta["fallback"]["attempts"][0]["outcome"] == outcome
        assert ledger(ws)[-2:] == [("openai", "gpt-4.1", outcome), ("claude-api", "claude-sonnet-5-5", "ok")]
        from ironspire.workspace.fallback import failure_kind

        assert reply.meta["fallback"]["attempts"][0]["reason"]
        if kind != "invalid_key":
            ws.set_setting("fallback_on", [k for k in ("unreachable", "5xx", "rate_limited", "quota") if k != kind])
            agent2 = ws.create_agent("b", provider="openai", model="gpt-4.1")
            agent2.set_fallback(["google/gemini-3.8-flash"])
            ws.health.reset("openai")
            with pytest.raises(ProviderUnavailable if status in (None, 500) else Exception) as raised:
                await agent2.send("no fallback for this kind")
            assert failure_kind(raised.value) == kind
            assert gm.requests == [] and agent2.history == []


async def test_a_candidate_that_fails_pre_flight_is_skipped_with_the_reason(ws: Workspace) -> None:
    ws.registry.register(ModelSpec(provider="openai", id="tiny-window", display_name="tiny", context_window=20,
                                   max_output_tokens=10, source="configured"))
    with serving(Server("oa"), Server("an", status=503), Server("gm")) as (oa, an, gm):
        point(ws, oa, an, gm)
        agent = ws.create_agent("long", provider="claude-api", model="claude-sonnet-5-5")
        agent.set_fallback("openai/tiny-window,google/gemini-3.8-flash")
        reply = await agent.send("a message far longer than twenty tokens " * 10)
        assert reply.provider == "google"
        skipped = reply.meta["fallback"]["attempts"][1]
        assert (skipped["provider"], skipped["outcome"]) == ("openai", "skipped")
        assert "holds 20" in skipped["reason"]
        assert oa.requests == []  # skipped without a request
        assert [p for p, _, _ in ledger(ws)] == ["claude-api", "google"]

        # every route out of reach: the first reason is raised, nothing is recorded or sent
        agent.set_fallback(["openai/tiny-window"])
        before = len(ws.analytics.turns())
        ws.registry.register(ModelSpec(provider="claude-api", id="claude-tiny", display_name="t", context_window=20,
                                       max_output_tokens=10, source="configured"))
        agent.switch("claude-api", "claude-tiny")
        with pytest.raises(ContextWindowExceeded) as raised:
            await agent.send("another long message, well over twenty tokens of text " * 5)
        assert [a.outcome for a in raised.value.attempts] == ["skipped", "skipped"]
        assert len(ws.analytics.turns()) == before and len(an.requests) == 2  # (the two 503s of the first turn)


async def test_health_skips_without_a_request_until_the_reset(real_ws: Workspace) -> None:
    ws = real_ws
    state, statuses = switchable(429)
    with serving(Server("oa", statuses=statuses, retry_after="1"), Server("an"), Server("gm")) as (oa, an, gm):
        point(ws, oa, an, gm)
        agent = ws.create_agent("a", provider="openai", model="gpt-4.1")
        ws.set_default_fallback(CHAIN)  # the workspace's chain, as the agent has none of its own
        assert agent.fallback is None and [str(r) for r in agent.fallback_chain] == CHAIN.split(",")
        assert (await agent.send("one")).provider == "claude-api"
        assert len(oa.requests) == 1
        state["status"] = 200
        second = await agent.send("two")  # openai is rate-limited for 1 s: not asked at all
        assert second.provider == "claude-api" and len(oa.requests) == 1
        assert second.meta["fallback"]["attempts"][0]["outcome"] == "skipped"
        assert "rate-limited" in second.meta["fallback"]["attempts"][0]["reason"]
        await asyncio.sleep(1.1)
        third = await agent.send("three")  # the limit has reset: the primary is tried again
        assert third.provider == "openai" and len(oa.requests) == 2
        # unreachable: passed over within the cooldown
        ws.set_provider_setting("claude-api", "base_url", f"http://127.0.0.1:{refused_port()}")
        other = ws.create_agent("b", provider="claude-api", model="claude-sonnet-5-5")
        other.set_fallback(["google/gemini-3.8-flash"])
        assert (await other.send("x")).provider == "google"
        ws.set_provider_setting("claude-api", "base_url", an.url)
        reply = await other.send("y")
        assert reply.provider == "google" and "cooling down" in reply.meta["fallback"]["attempts"][0]["reason"]
        assert len(an.requests) == 2  # the two turns of agent a
        ws.set_setting("fallback_cooldown", 0.01)
        await asyncio.sleep(0.02)
        assert (await other.send("z")).provider == "claude-api"
        # disabled providers are skipped too
        await ws.disable("openai")
        assert (await agent.send("four")).provider == "claude-api"
        assert len(oa.requests) == 2


async def test_a_failure_after_output_started_is_not_retried(ws: Workspace) -> None:
    with serving(Server("oa", mode="cut"), Server("an"), Server("gm")) as (oa, an, gm):
        point(ws, oa, an, gm)
        agent = ws.create_agent("s", provider="openai", model="gpt-4.1")
        agent.set_fallback(CHAIN)
        seen: list[str] = []
        with pytest.raises(ProviderUnavailable, match="overloaded"):
            async for event in agent.stream("hello"):
                if isinstance(event, TextDelta):
                    seen.append(event.text)
        assert "".join(seen).startswith("oa: ")  # the caller had output: no other route may take over
        assert an.requests == [] and gm.requests == []
        assert agent.history == [] and [e.status for e in agent.transcript()] == ["unanswered"]
        assert [p for p, _, _ in ledger(ws)] == ["openai"]


async def test_configuration_is_checked_and_shown(real_ws: Workspace) -> None:
    ws = real_ws
    agent = ws.create_agent("c", provider="openai", model="gpt-4.1")
    with pytest.raises(ConfigurationError, match="PROVIDER/MODEL"):
        agent.set_fallback("claude-api")
    with pytest.raises(ConfigurationError, match="unknown"):
        agent.set_fallback("nosuch/model")
    with pytest.raises(ConfigurationError, match="fallback trigger"):
        ws.set_setting("fallback_on", ["sometimes"])
    ws.set_default_fallback("google/gemini-3.8-flash")
    agent.set_fallback([])  # none at all, not even the default chain
    assert agent.fallback == () and agent.fallback_chain == ()
    agent.set_fallback(None)
    assert [str(r) for r in agent.fallback_chain] == ["google/gemini-3.8-flash"]
    from ironspire import views

    view = views.agent(ws, "c")
    assert view.to_json()["fallback"] == {"routes": ["google/gemini-3.8-flash"], "inherited": True}


async def test_fallbacks_and_budgets_travel_with_an_export(ws: Workspace, open_ws: Any, tmp_path: Path) -> None:
    from ironspire.workspace.budgets import Budget
    from ironspire.workspace.fallback import FallbackRoute

    agent = ws.create_agent("traveller", provider="openai", model="gpt-4.1")
    agent.set_fallback("claude-api/claude-sonnet-5-5")
    agent.set_budget(3, "day")
    ws.create_agent("stay-home").set_fallback([])
    ws.set_default_fallback("google/gemini-3.8-flash")
    ws.set_budget(50)
    assert "agent_fallback:1" not in json.dumps(ws.settings())  # per-agent values are not workspace settings
    path = ws.export(tmp_path / "export.json")
    other = open_ws(tmp_path / "elsewhere")
    try:
        other.import_(path)
        moved = other.agent("traveller")
        assert moved.fallback == (FallbackRoute("claude-api", "claude-sonnet-5-5"),)
        assert moved.budget == Budget(3.0, "day") and other.budget == Budget(50.0, "month")
        assert other.agent("stay-home").fallback == ()
        assert other.default_fallback == (FallbackRoute("google", "gemini-3.8-flash"),)
    finally:
        await other.aclose()


async def test_a_candidate_without_tools_is_skipped_when_the_history_holds_tool_calls(ws: Workspace) -> None:
    ws.registry.register(ModelSpec(provider="google", id="gemini-no-tools", display_name="nt", context_window=100_000,
                                   max_output_tokens=1000, tools=False, source="configured"))
    state, statuses = switchable()
    with serving(Server("oa", mode="tools", statuses=statuses), Server("an"), Server("gm")) as (oa, an, gm):
        point(ws, oa, an, gm)
        agent = ws.create_agent("t", provider="openai", model="gpt-4.1")
        agent.set_fallback("google/gemini-no-tools,claude-api/claude-sonnet-5-5")
        call = (await agent.send("Weather in Oslo?", tools=[WEATHER])).tool_calls[0]
        state["status"] = 500
        reply = await agent.send(Message.tool(ToolResult(call.id, call.name, (Text("-3C"),))), tools=[WEATHER])
        assert reply.provider == "claude-api" and gm.requests == []
        skipped = reply.meta["fallback"]["attempts"][1]
        assert skipped["outcome"] == "skipped" and "does not support tools" in skipped["reason"]
        # with the flatten policy the same model can take it (tool history as text)
        ws.set_setting("degrade_tools", "flatten")
        reply = await agent.send("And tomorrow?")
        assert reply.provider == "google" and "[called tool get_weather" in json.dumps(gm.requests[0]["body"])


async def test_a_stream_moves_on_while_nothing_was_shown(ws: Workspace) -> None:
    with serving(Server("oa", status=503), Server("an"), Server("gm")) as (oa, an, gm):
        point(ws, oa, an, gm)
        agent = ws.create_agent("streamer", provider="openai", model="gpt-4.1")
        agent.set_fallback(CHAIN)
        shown = "".join([e.text async for e in agent.stream("hello") if isinstance(e, TextDelta)])
        assert shown == "an: 1 messages, last: hello"  # only the route that answered was streamed
        reply = agent.history[-1]
        assert reply.provider == "claude-api" and reply.meta["fallback"]["answered"] == "claude-api/claude-sonnet-5-5"
        assert oa.requests[0]["body"]["stream"] is True and an.requests[0]["body"]["stream"] is True
        rows = ws.analytics.turns()
        assert [(r["provider"], r["outcome"], r["streamed"]) for r in rows] == [
            ("openai", "ProviderUnavailable", True), ("claude-api", "ok", True)]
        assert all(r["latency_s"] > 0 for r in rows)
