"""Pre-flight refusals and degradations, and the ledger's cost rules (billed, unbilled, API-equivalent)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from ironspire.catalog.providers import CustomEndpoint
from ironspire.errors import CapabilityError, ContextWindowExceeded
from ironspire.messages import Image, Message, StreamEvent, Text, ToolCall, ToolResult, Usage
from ironspire.protocols.base import Backend, ChatRequest, Target, Tool
from ironspire.workspace import Workspace

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


class Canned(Backend):
    """Answers without a network and remembers the request it was given."""

    def __init__(self, reply: Message) -> None:
        self.reply = reply
        self.requests: list[ChatRequest] = []

    async def complete(self, request: ChatRequest, target: Target) -> Message:
        self.requests.append(request)
        return self.reply

    async def stream(self, request: ChatRequest, target: Target) -> AsyncIterator[StreamEvent]:
        raise NotImplementedError
        yield  # pragma: no cover


def _tiny(ws: Workspace, **facts: Any) -> Canned:
    ws.add_custom_endpoint(CustomEndpoint("tiny", "http://127.0.0.1:9/v1", "t", **facts))
    backend = Canned(Message("assistant", (Text("ok"),), "custom-tiny", "t", Usage(10, 2)))
    ws.use_backend("openai_chat", backend)
    return backend


async def test_history_larger_than_the_context_window_names_both_sizes(ws: Workspace) -> None:
    backend = _tiny(ws, context_window=1_000)
    agent = ws.create_agent("a", provider="custom-tiny", model="t")
    with pytest.raises(ContextWindowExceeded) as info:
        await agent.send("x" * 8_000)
    assert info.value.used is not None and info.value.used > 1_000 and info.value.limit == 1_000
    assert "2,0" in str(info.value) and "1,000" in str(info.value)
    assert backend.requests == [] and agent.transcript() == [] and ws.analytics.turns() == []


async def test_images_to_a_model_without_vision(ws: Workspace) -> None:
    backend = _tiny(ws, vision=False)
    agent = ws.create_agent("a", provider="custom-tiny", model="t")
    with pytest.raises(CapabilityError, match="vision"):
        await agent.send(Message.user("what is this?", Image("image/png", data=PNG)))
    ws.set_setting("degrade_images", "omit")
    await agent.send(Message.user("what is this?", Image("image/png", data=PNG)))
    sent = backend.requests[-1].messages[-1]
    assert sent.parts == (Text("what is this?"), Text("[image omitted]"))
    assert isinstance(agent.history[0].parts[1], Image)  # the stored history keeps the image


async def test_tools_to_a_model_without_tools(ws: Workspace) -> None:
    backend = _tiny(ws, tools=False)
    agent = ws.create_agent("a", provider="custom-tiny", model="t")
    with pytest.raises(CapabilityError, match="tools"):
        await agent.send("hi", tools=[Tool("lookup")])
    history_with_tools = [
        Message.user("weather?"),
        Message("assistant", (ToolCall("call_1", "weather", {"city": "Oslo"}),)),
        Message.tool(ToolResult("call_1", "weather", (Text("-3C"),))),
    ]
    agent._history = list(history_with_tools)
    with pytest.raises(CapabilityError, match="tool calls"):
        await agent.send("and tomorrow?")
    ws.set_setting("degrade_tools", "flatten")
    await agent.send("and tomorrow?", tools=[Tool("lookup")])
    request = backend.requests[-1]
    assert request.tools == ()
    assert [m.role for m in request.messages] == ["user", "assistant", "user"]
    assert request.messages[1].text == '[called tool weather with {"city": "Oslo"}]'
    assert request.messages[2].text == "[result of tool weather: -3C]and tomorrow?"


async def test_unbilled_providers_cost_nothing_but_keep_the_api_equivalent(ws: Workspace) -> None:
    sdk = Canned(Message("assistant", (Text("hi"),), "claude-sdk", "claude-sonnet-5-5", Usage(1000, 100, 5000, 0),
                         "stop", {"cost_usd": 0.0123}))
    ws.use_backend("claude_cli", sdk)
    ollama = Canned(Message("assistant", (Text("hi"),), "ollama", "llama3", Usage(300, 30)))
    ws.use_backend("ollama_chat", ollama)
    api = Canned(Message("assistant", (Text("hi"),), "claude-api", "claude-sonnet-5-5", Usage(1000, 100, 5000, 0)))
    ws.use_backend("anthropic_messages", api)
    await ws.create_agent("sub", provider="claude-sdk", model="claude-sonnet-5-5").send("q")
    await ws.create_agent("local", provider="ollama", model="llama3").send("q")
    ws.credentials.set("claude-api", "api_key", "sk-ant-unused-1234")
    await ws.create_agent("paid", provider="claude-api", model="claude-sonnet-5-5").send("q")
    rows = {r["agent"]: r for r in ws.analytics.turns()}
    price = ws.registry.get("claude-api", "claude-sonnet-5-5").price
    expected = (1000 * price.input + 100 * price.output + 5000 * price.cache_read) / 1e6
    assert rows["sub"]["cost_usd"] == 0 and rows["sub"]["api_cost_usd"] == pytest.approx(0.0123)
    assert rows["local"]["cost_usd"] == 0 and rows["local"]["api_cost_usd"] is None
    assert rows["paid"]["cost_usd"] == pytest.approx(expected) == rows["paid"]["api_cost_usd"]
    assert rows["paid"]["cache_read_tokens"] == 5000
