"""A tool call left without a result (a cut-off turn, or a user who wrote instead of running
the tool) must not make the next request fail on any provider."""

from __future__ import annotations

import json

import pytest

from ironspire.catalog.models import Registry
from ironspire.catalog.providers import builtin
from ironspire.messages import Message, Text, ToolCall
from ironspire.protocols import backend_for
from ironspire.protocols.base import ChatRequest, HttpProtocol, Secrets, Target
from ironspire.protocols.common import INTERRUPTED, conversation

HISTORY = (
    Message.user("What's the weather in Paris?"),
    Message("assistant", (Text("Checking."), ToolCall("toolu_01A", "get_weather", {"city": "Paris"}))),
    Message.user("Never mind, just tell me a joke."),
)


def test_unanswered_call_gets_an_error_result_where_it_was_due() -> None:
    msgs = conversation(ChatRequest(HISTORY))
    assert [m.role for m in msgs] == ["user", "assistant", "tool", "user"]
    result = msgs[2].parts[0]
    assert result.call_id == "toolu_01A" and result.tool_name == "get_weather"  # type: ignore[union-attr]
    assert result.is_error and INTERRUPTED in result.text()  # type: ignore[union-attr]


def test_answered_calls_are_left_alone() -> None:
    from ironspire.messages import ToolResult

    answered = (*HISTORY[:2], Message.tool(ToolResult("toolu_01A", "get_weather", (Text("18C"),))), HISTORY[2])
    assert conversation(ChatRequest(answered)) == list(answered)


@pytest.mark.parametrize(
    ("provider", "model", "settings"),
    [
        ("claude-api", "claude-sonnet-5", {}),
        ("bedrock", "us.amazon.nova-pro-v1:0", {"region": "us-east-1"}),
        ("google", "gemini-3.8-flash", {}),
        ("ollama", "llama3.2", {}),
        ("openai", "gpt-4.1", {}),
    ],
)
def test_every_protocol_sends_a_result_for_the_dangling_call(
    provider: str, model: str, settings: dict[str, str]
) -> None:
    spec = builtin(provider)
    secrets = {"api_key": "k", "access_key_id": "AKIDEXAMPLE", "secret_access_key": "s"}
    target = Target(spec, Registry().get(provider, model), spec.base_url or "http://127.0.0.1:9", Secrets(secrets),
                    settings)
    backend = backend_for(spec.protocol)
    assert isinstance(backend, HttpProtocol)
    wire = backend.encode(ChatRequest(HISTORY), target, stream=False)
    body = wire.json if wire.json is not None else json.loads(wire.content or b"{}")
    assert INTERRUPTED in json.dumps(body)


@pytest.mark.parametrize(
    ("provider", "model"),
    [("claude-api", "claude-sonnet-5"), ("bedrock", "us.amazon.nova-pro-v1:0"), ("google", "gemini-3.8-flash"),
     ("ollama", "llama3.2"), ("openai", "gpt-4.1")],
)
@pytest.mark.parametrize("body", [b"<html>Bad Gateway</html>", b"[1, 2]", b"\xff\xfe"])
def test_a_malformed_success_body_is_a_typed_provider_failure(provider: str, model: str, body: bytes) -> None:
    from ironspire.errors import ProviderUnavailable

    spec = builtin(provider)
    target = Target(spec, Registry().get(provider, model), "http://127.0.0.1:9")
    backend = backend_for(spec.protocol)
    assert isinstance(backend, HttpProtocol)
    with pytest.raises(ProviderUnavailable) as exc:
        backend.decode(body, target)
    assert provider in str(exc.value)


async def test_an_empty_stream_names_the_likely_cause() -> None:
    """llama.cpp answers an over-long streamed prompt with an empty 200 stream: the user is told
    what probably happened rather than only that the stream ended."""
    import httpx2

    from ironspire.catalog.providers import CustomEndpoint
    from ironspire.errors import ProviderUnavailable
    from ironspire.http import through
    from ironspire.transport import Transport

    def empty(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=b"")

    class Empty(Transport):
        def __init__(self) -> None:
            super().__init__(http=through(httpx2.MockTransport(empty)))

    spec = CustomEndpoint("local", "http://127.0.0.1:9/v1", "smollm2", context_window=2048).spec()
    from ironspire.catalog.models import dynamic_model

    target = Target(spec, dynamic_model(spec.id, "smollm2", context_window=2048), spec.base_url)
    backend = backend_for("openai_chat", Empty())
    with pytest.raises(ProviderUnavailable) as exc:
        async for _ in backend.stream(ChatRequest((Message.user("hi"),)), target):
            pass
    assert "without sending anything" in str(exc.value) and "context window" in str(exc.value)


def test_a_result_arriving_after_its_call_was_closed_becomes_text() -> None:
    """Sent as a result it would follow no open call (every provider rejects that); sent as
    text the model still learns what the tool returned."""
    from ironspire.messages import ToolResult

    late = Message.tool(ToolResult("toolu_01A", "get_weather", (Text("18C"),)))
    msgs = conversation(ChatRequest((*HISTORY, Message.assistant("Here is a joke."), late)))
    assert [m.role for m in msgs] == ["user", "assistant", "tool", "user", "assistant", "user"]
    assert msgs[-1].parts == (Text("[late result of tool get_weather: 18C]"),)
    assert sum(isinstance(p, ToolResult) and p.call_id == "toolu_01A" for m in msgs for p in m.parts) == 1


def test_openai_keeps_system_messages_in_place_and_answers_each_call_once() -> None:
    spec = builtin("openai")
    target = Target(spec, Registry().get("openai", "gpt-4.1"), spec.base_url, Secrets({"api_key": "k"}))
    history = (HISTORY[0], Message.system("Be brief."), *HISTORY[1:])
    backend = backend_for("openai_chat")
    assert isinstance(backend, HttpProtocol)
    body = backend.encode(ChatRequest(history), target, stream=False).json
    assert [m["role"] for m in body["messages"]] == ["user", "system", "assistant", "tool", "user"]
    assert [m.get("tool_call_id") for m in body["messages"]].count("toolu_01A") == 1
