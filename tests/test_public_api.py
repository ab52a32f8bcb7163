"""The Python interface DESIGN.md promises to keep stable, used exactly as a user would: names
imported from the top package, ``Workspace.open`` with its real components (credentials from the
environment, the real health monitor), and real loopback servers speaking OpenAI, Anthropic
and Ollama. A public name that disappears, is renamed or changes behaviour fails here."""

from __future__ import annotations

import asyncio
import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

import ironspire
from ironspire import Finish, Message, TextDelta, Tool, ToolResult, Workspace
from ironspire.health import HealthState
from workspace.loopback import TOOL_ARGUMENTS, TOOL_CALL_ID, Server, serving

PUBLIC = {
    "Workspace": "ironspire.workspace.workspace", "Agent": "ironspire.workspace.agent",
    "Message": "ironspire.messages", "Text": "ironspire.messages", "Image": "ironspire.messages",
    "ToolCall": "ironspire.messages", "ToolResult": "ironspire.messages", "Reasoning": "ironspire.messages",
    "Usage": "ironspire.messages", "TextDelta": "ironspire.messages", "ReasoningDelta": "ironspire.messages",
    "ToolCallStart": "ironspire.messages", "ToolCallDelta": "ironspire.messages",
    "ToolCallEnd": "ironspire.messages", "UsageEvent": "ironspire.messages", "Finish": "ironspire.messages",
    "Tool": "ironspire.protocols.base", "Registry": "ironspire.catalog.models",
    "ModelSpec": "ironspire.catalog.models", "ProviderSpec": "ironspire.catalog.providers",
    "IronspireError": "ironspire.errors",
}


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-public-api-openai-000")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-public-api-000")


def _point(ws: Workspace, oa: Server, an: Server, ol: Server) -> None:
    ws.set_provider_setting("openai", "base_url", oa.url + "/v1")
    ws.set_provider_setting("claude-api", "base_url", an.url)
    ws.set_provider_setting("ollama", "base_url", ol.url)


def test_top_package_exports_the_public_names_lazily() -> None:
    for name, module in PUBLIC.items():
        assert name in ironspire.__all__ and name in dir(ironspire), name
        assert getattr(ironspire, name).__module__ == module, name
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = ironspire.Nope  # type: ignore[attr-defined]
    code = ("import sys, ironspire; "
            "print(sorted(m for m in ('sqlalchemy', 'httpx', 'httpx2', 'aiohttp') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"  # `import ironspire` stays cheap: nothing heavy before first use


def test_signatures_match_the_design() -> None:
    def params(fn: object) -> list[tuple[str, object]]:
        return [(p.name, p.default) for p in inspect.signature(fn).parameters.values()  # type: ignore[arg-type]
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]

    e = inspect.Parameter.empty
    agent_cls = ironspire.Agent
    assert params(Workspace.open) == [("home", None)]
    assert params(Workspace.set_default) == [("self", e), ("provider", e), ("model", e)]
    assert params(Workspace.create_agent) == [("self", e), ("name", e), ("provider", None), ("model", None),
                                              ("system", None)]
    assert params(Workspace.agent) == [("self", e), ("name", e)]
    assert params(Workspace.export) == [("self", e), ("path", e)]
    assert isinstance(inspect.getattr_static(Workspace, "analytics"), property)
    assert params(agent_cls.send) == [("self", e), ("content", e)]
    assert inspect.iscoroutinefunction(agent_cls.send)
    assert params(agent_cls.stream) == [("self", e), ("content", e)]
    assert inspect.isasyncgenfunction(agent_cls.stream)
    assert params(agent_cls.switch) == [("self", e), ("provider", e), ("model", e)]
    assert "tools" in inspect.signature(agent_cls.send).parameters
    assert "tools" in inspect.signature(agent_cls.stream).parameters
    for fn in (Workspace.open, Workspace.set_default, Workspace.create_agent, Workspace.agent, Workspace.export,
               agent_cls.send, agent_cls.stream, agent_cls.switch, Workspace.aclose):
        assert inspect.getdoc(fn), fn


async def test_a_user_session_end_to_end(tmp_path: Path, keys: None) -> None:
    home = tmp_path / "project"
    with serving(Server("oa", mode="tools"), Server("an"), Server("ol")) as (oa, an, ol):
        async with Workspace.open(home=home) as ws:
            _point(ws, oa, an, ol)
            ws.set_default("openai", "gpt-4.1")
            writer = ws.create_agent("writer", system="Be brief.")  # inherits the default
            critic = ws.create_agent("critic", provider="claude-api", model="claude-sonnet-5-5")
            helper = ws.create_agent("helper")
            assert ws.agent("writer") is writer

            reply = await writer.send("hello")
            assert isinstance(reply, Message) and reply.role == "assistant"
            assert (reply.text, reply.provider, reply.model) == ("oa: 2 messages, last: hello", "openai", "gpt-4.1")
            assert (await critic.send(Message.user("review"))).text == "an: 1 messages, last: review"
            assert ws.health.status("openai").state is HealthState.REACHABLE  # live traffic updated it

            events = [e async for e in writer.stream("more")]
            streamed = "".join(e.text for e in events if isinstance(e, TextDelta))
            assert streamed == "oa: 4 messages, last: more" == writer.history[-1].text
            assert any(isinstance(e, Finish) and e.reason == "stop" for e in events)

            writer.switch("claude-api", "claude-sonnet-5-5")  # mid-conversation: history goes along
            assert (await writer.send("after switch")).text == "an: 5 messages, last: after switch"
            sent = json.dumps(an.requests[-1]["body"]["messages"])
            assert "hello" in sent and "oa: 4 messages, last: more" in sent
            writer.switch("ollama", "llama3")
            events = [e async for e in writer.stream("local now")]
            assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "ol: 8 messages, last: local now"

            ws.set_default("ollama", "llama3")  # the inheriting agent follows at its next request
            assert (await helper.send("hi")).text == "ol: 1 messages, last: hi"

            tooler = ws.create_agent("tooler", provider="openai", model="gpt-4.1")
            weather = Tool("get_weather", "Current weather for a city",
                           {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
            asked = await tooler.send("weather in Oslo?", tools=[weather])
            (call,) = asked.tool_calls
            assert (call.id, call.name, dict(call.arguments)) == (TOOL_CALL_ID, "get_weather", TOOL_ARGUMENTS)
            result = Message.tool(ToolResult(call.id, call.name, (ironspire.Text("sunny, 21 C"),)))
            final = await tooler.send(result, tools=[weather])
            assert final.text == "oa: 3 messages, tool said: sunny, 21 C"

            checked = await ws.health.check(["openai", "claude-api", "ollama"])
            assert {pid: s.state for pid, s in checked.items()} == dict.fromkeys(checked, HealthState.REACHABLE)

            kpis = ws.analytics.kpis()
            assert (kpis["turns"], kpis["errors"], kpis["active_agents"], kpis["running_agents"]) == (8, 0, 4, 0)
            # the servers' usage: OpenAI 120 a text turn (40 cached) and 92 the tool call; Anthropic 260
            # (200 cache read); Ollama 37
            assert kpis["total_tokens"] == 120 * 3 + 92 + 260 * 2 + 37 * 2
            assert kpis["cache_hit_rate"] == pytest.approx((40 * 3 + 200 * 2) / (100 * 3 + 80 + 250 * 2 + 30 * 2))
            assert kpis["total_spend_usd"] > 0

            out = ws.export(tmp_path / "export" / "project.json")
            assert out == tmp_path / "export" / "project.json"
            data = json.loads(out.read_text())
            routes = {a["name"]: (a["provider"], a["model"]) for a in data["agents"]}
            assert routes == {"writer": ("ollama", "llama3"), "critic": ("claude-api", "claude-sonnet-5-5"),
                              "helper": (None, None), "tooler": ("openai", "gpt-4.1")}
            assert "sk-" not in out.read_text()

    async with Workspace.open(home) as again:  # a later process sees the same project
        writer = again.agent("writer")
        assert len(writer.history) == 8 and writer.history[-1].text == "ol: 8 messages, last: local now"
        assert writer.route is not None and (writer.route.provider, writer.route.model) == ("ollama", "llama3")


async def test_aclose_stops_health_checks_and_pools(tmp_path: Path, keys: None) -> None:
    with serving(Server("oa"), Server("an"), Server("ol")) as (oa, an, ol):
        ws = Workspace.open(tmp_path / "ws")
        _point(ws, oa, an, ol)
        ws.set_default("openai", "gpt-4.1")
        await ws.create_agent("a").send("hi")
        await ws.health.start(0.01, lambda: ["openai"])
        await asyncio.sleep(0.05)
        await ws.aclose()
        assert not ws.health.running and not ws.transport.has_pool("openai")
        await asyncio.sleep(0.05)  # a monitor left running would probe again and reopen the pool
        assert not ws.transport.has_pool("openai")
        await ws.aclose()  # a second close is harmless


async def test_two_workspaces_in_one_process_are_independent(tmp_path: Path, keys: None) -> None:
    with serving(Server("one"), Server("two"), Server("unused")) as (one, two, unused):
        async with Workspace.open(tmp_path / "a") as a, Workspace.open(tmp_path / "b") as b:
            _point(a, one, unused, unused)
            _point(b, two, unused, unused)
            a.set_default("openai", "gpt-4.1")
            b.set_default("openai", "gpt-4.1-mini")
            ra = await a.create_agent("same").send("to a")
            rb = await b.create_agent("same").send("to b")
            assert (ra.text, rb.text) == ("one: 1 messages, last: to a", "two: 1 messages, last: to b")
            assert rb.model == "gpt-4.1-mini" and a.agent("same") is not b.agent("same")
            assert [len(ws.analytics.turns()) for ws in (a, b)] == [1, 1]
            assert len(a.agent("same").history) == len(b.agent("same").history) == 2
