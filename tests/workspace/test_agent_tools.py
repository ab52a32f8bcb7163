"""Tool use through the agent API, against loopback servers and the real adapters: a turn that
ends in a tool call, the caller's tool result sent as the next turn, both kept in the stored
history, and the call/result pair still paired when the agent moves to another provider."""

from __future__ import annotations

import re
from typing import Any

import pytest

from ironspire.messages import Message, Text, ToolCall, ToolCallStart, ToolResult
from ironspire.protocols.base import Tool
from ironspire.workspace import Workspace
from workspace.loopback import TOOL_ARGUMENTS, TOOL_CALL_ID, Server, serving

WEATHER = Tool("get_weather", "Current weather in a city.",
               {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
ANTHROPIC_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-openai-key-000")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-key-000")


def _point(ws: Workspace, oa: Server, an: Server, ol: Server) -> None:
    ws.set_provider_setting("openai", "base_url", oa.url + "/v1")
    ws.set_provider_setting("claude-api", "base_url", an.url)
    ws.set_provider_setting("ollama", "base_url", ol.url)


def _result(call: ToolCall) -> Message:
    return Message.tool(ToolResult(call.id, call.name, (Text("-3C, light snow"),)))


def _anthropic_pair(body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The tool_use block and the tool_result block of an encoded Anthropic request."""
    messages = body["messages"]
    for i, m in enumerate(messages):
        uses = [b for b in m["content"] if b["type"] == "tool_use"]
        if uses:
            assert m["role"] == "assistant" and messages[i + 1]["role"] == "user"
            results = [b for b in messages[i + 1]["content"] if b["type"] == "tool_result"]
            assert messages[i + 1]["content"][0]["type"] == "tool_result"
            assert len(uses) == len(results) == 1
            return uses[0], results[0]
    raise AssertionError(f"no tool_use in {messages}")


async def test_tool_call_result_and_switch_keep_the_pair(ws: Workspace, open_ws: Any) -> None:
    with serving(Server("oa", mode="tools"), Server("an"), Server("ol")) as (oa, an, ol):
        _point(ws, oa, an, ol)
        agent = ws.create_agent("tooler", provider="openai", model="gpt-4.1", system="Be terse.")

        asked = await agent.send("Weather in Oslo?", tools=[WEATHER])
        assert oa.requests[0]["body"]["tools"][0]["function"]["name"] == "get_weather"
        assert asked.text == "" and asked.finish_reason == "tool_calls"
        [call] = asked.tool_calls
        assert (call.id, call.name, dict(call.arguments), call.provider) == (
            TOOL_CALL_ID, "get_weather", TOOL_ARGUMENTS, "openai")

        answer = await agent.send(_result(call), tools=[WEATHER])
        assert answer.text == "oa: 4 messages, tool said: -3C, light snow"  # system, user, call, result
        sent = oa.requests[1]["body"]["messages"]
        assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool"] or \
            [m["role"] for m in sent] == ["developer", "user", "assistant", "tool"]
        assert sent[2]["tool_calls"][0]["id"] == sent[3]["tool_call_id"] == TOOL_CALL_ID

        kinds = [(m.role, type(m.parts[0]).__name__) for m in agent.history]
        assert kinds == [("user", "Text"), ("assistant", "ToolCall"), ("tool", "ToolResult"), ("assistant", "Text")]
        stored = open_ws().agent("tooler")  # what a restarted process reads back from SQLite
        assert stored.history == agent.history
        stored.ws.close()

        agent.switch("claude-api", "claude-sonnet-5-5")
        moved = await agent.send("And tomorrow?")
        assert moved.text == "an: 5 messages, last: And tomorrow?"
        body = an.requests[0]["body"]
        assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user", "assistant", "user"]
        use, result = _anthropic_pair(body)
        assert ANTHROPIC_ID.match(use["id"]) and use["id"] != TOOL_CALL_ID  # "." and ":" are refused there
        assert result["tool_use_id"] == use["id"] and use["input"] == TOOL_ARGUMENTS
        assert "-3C, light snow" in str(result["content"])

        agent.switch("ollama", "llama3")
        await agent.send("Thanks.")
        messages = ol.requests[0]["body"]["messages"]
        [i] = [n for n, m in enumerate(messages) if m.get("tool_calls")]
        function = messages[i]["tool_calls"][0]["function"]
        assert (function["name"], function["arguments"]) == ("get_weather", TOOL_ARGUMENTS)
        assert messages[i + 1]["role"] == "tool" and messages[i + 1]["content"] == "-3C, light snow"
        assert messages[i + 1].get("tool_name") == "get_weather"
    assert [m.provider for m in agent.history if m.role == "assistant"] == ["openai", "openai", "claude-api", "ollama"]
    assert len(agent.history) == 8

    from typer.testing import CliRunner

    from ironspire.cli.app import app

    shown = CliRunner().invoke(app, ["history", "tooler"], env={"IRONSPIRE_HOME": str(ws.home)})
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.output.split())
    assert "assistant (openai/gpt-4.1) [tool call get_weather({'city': 'Oslo'})]" in text
    assert "tool [result of tool get_weather: -3C, light snow]" in text


async def test_streamed_tool_call_then_result_answered_by_another_provider(ws: Workspace) -> None:
    """The call is made on OpenAI (streamed); the agent moves before the result is sent, so
    the new provider receives a call it did not make together with its result."""
    with serving(Server("oa", mode="tools"), Server("an"), Server("ol")) as (oa, an, ol):
        _point(ws, oa, an, ol)
        agent = ws.create_agent("streamer", provider="openai", model="gpt-4.1")
        events = [e async for e in agent.stream("Weather in Oslo?", tools=[WEATHER])]
        assert [e.name for e in events if isinstance(e, ToolCallStart)] == ["get_weather"]
        [call] = agent.history[-1].tool_calls
        assert call.id == TOOL_CALL_ID and dict(call.arguments) == TOOL_ARGUMENTS

        agent.switch("claude-api", "claude-sonnet-5-5")
        answer = await agent.send(_result(call), tools=[WEATHER])
        body = an.requests[0]["body"]
        assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
        use, result = _anthropic_pair(body)
        assert result["tool_use_id"] == use["id"] and use["name"] == "get_weather"
        assert body["tools"][0]["name"] == "get_weather"
        assert answer.provider == "claude-api"
    assert [type(m.parts[0]).__name__ for m in agent.history] == ["Text", "ToolCall", "ToolResult", "Text"]
    assert [r["outcome"] for r in ws.analytics.turns()] == ["ok", "ok"]
