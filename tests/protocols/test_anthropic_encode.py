"""What the Anthropic adapter sends for a neutral history, and how it classifies failures.

Model quirks come from the shipped registry (claude-opus-5-5 has no_sampling / no_forced_tool /
no_prefill; claude-haiku-4-5 has none), so these tests break if the data and the adapter drift.
Error bodies are the ones Anthropic documents or users quoted (realdata/other/
ERROR_BODIES_FROM_ISSUE_THREADS.md); they are served through the real Transport.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
import pytest

from ironspire.catalog.models import Registry
from ironspire.catalog.providers import builtin
from ironspire.errors import (
    AuthenticationError,
    BadRequest,
    CapabilityError,
    ContextWindowExceeded,
    ProviderUnavailable,
    RateLimitError,
)
from ironspire.messages import Accumulator, Image, Message, Reasoning, Text, ToolCall, ToolResult
from ironspire.protocols.anthropic_messages import AnthropicMessages, encode_body, ratelimit_reset
from ironspire.protocols.base import ChatRequest, Secrets, Target, Tool
from ironspire.transport import Transport
from support.replay import ReplayTransport

KEY = "sk-ant-test-0123456789abcdef"
WEATHER = Tool("weather", "Weather for a city", {"type": "object", "properties": {"city": {"type": "string"}}})


def target(model_id: str = "claude-haiku-4-5") -> Target:
    return Target(builtin("claude-api"), Registry().get("claude-api", model_id), "https://api.anthropic.com",
                  Secrets({"api_key": KEY}))


def body(request: ChatRequest, model_id: str = "claude-haiku-4-5", stream: bool = False) -> dict[str, Any]:
    return encode_body(request, target(model_id), stream=stream)


def ask(*messages: Message, **knobs: Any) -> ChatRequest:
    return ChatRequest(tuple(messages), **knobs)


# --- request shape -----------------------------------------------------------------------------------


def test_headers_url_and_required_fields() -> None:
    wire = AnthropicMessages(Transport()).encode(ask(Message.user("hi")), target(), stream=True)
    assert wire.url == "https://api.anthropic.com/v1/messages"
    assert wire.headers["x-api-key"] == KEY
    assert wire.headers["anthropic-version"] == "2023-06-01"
    assert wire.json["stream"] is True
    assert wire.json["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    assert wire.json["max_tokens"] == 8192


def test_max_tokens_is_bounded_by_the_model() -> None:
    assert body(ask(Message.user("hi"), max_tokens=10**6))["max_tokens"] == 64000
    assert body(ask(Message.user("hi"), max_tokens=100))["max_tokens"] == 100


def test_system_messages_move_to_the_top_level_field() -> None:
    sent = body(ask(Message.system("Be brief."), Message.user("hi"), system="You are Ada."))
    assert sent["system"] == "You are Ada.\n\nBe brief."
    assert [m["role"] for m in sent["messages"]] == ["user"]


def test_stop_sequences_and_temperature() -> None:
    sent = body(ask(Message.user("hi"), stop=("END",), temperature=1.7))
    assert sent["stop_sequences"] == ["END"]
    assert sent["temperature"] == 1.0  # Anthropic's range is 0..1


def test_no_sampling_models_get_no_temperature() -> None:
    assert "temperature" not in body(ask(Message.user("hi"), temperature=0.2), "claude-opus-5-5")


def test_forced_tool_on_a_model_that_rejects_it_is_a_capability_error() -> None:
    with pytest.raises(CapabilityError, match="forced tool use"):
        body(ask(Message.user("hi"), tools=(WEATHER,), force_tool="weather"), "claude-opus-5-5")
    with pytest.raises(CapabilityError):
        body(ask(Message.user("hi"), tools=(WEATHER,), tool_choice="required"), "claude-sonnet-5-5")


def test_tool_choice_mapping() -> None:
    forced = body(ask(Message.user("hi"), tools=(WEATHER,), force_tool="weather"))
    assert forced["tool_choice"] == {"type": "tool", "name": "weather"}
    assert forced["tools"] == [{"name": "weather", "description": "Weather for a city",
                                "input_schema": dict(WEATHER.parameters)}]
    assert body(ask(Message.user("hi"), tools=(WEATHER,), tool_choice="required"))["tool_choice"] == {"type": "any"}
    assert body(ask(Message.user("hi"), tools=(WEATHER,), tool_choice="none"))["tool_choice"] == {"type": "none"}


def test_prefill_is_refused_for_no_prefill_models_and_trimmed_for_others() -> None:
    history = (Message.user("Name a colour."), Message.assistant("The colour is "))
    with pytest.raises(BadRequest, match="prefill"):
        body(ask(*history), "claude-opus-5-5")
    sent = body(ask(*history))
    assert sent["messages"][-1] == {"role": "assistant", "content": [{"type": "text", "text": "The colour is"}]}


def test_empty_trailing_assistant_turn_is_dropped_not_refused() -> None:
    history = (Message.user("hi"), Message("assistant", (Text(" "),)))
    assert [m["role"] for m in body(ask(*history), "claude-opus-5-5")["messages"]] == ["user"]


def test_tool_calls_results_and_foreign_ids() -> None:
    call = ToolCall("call.abc:1", "weather", {"city": "Oslo"}, provider="bedrock")
    history = (
        Message.user("Weather in Oslo and Rome?"),
        Message("assistant", (call, ToolCall("call_ok-2", "weather", {"city": "Rome"}))),
        Message.tool(ToolResult("call.abc:1", "weather", (Text("rain"),)),
                     ToolResult("call_ok-2", "weather", (Text("boom"),), is_error=True)),
        Message.user("Thanks. Which is warmer?"),
    )
    sent = body(ask(*history, tools=(WEATHER,)))["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    mapped = sent[1]["content"][0]["id"]
    assert mapped.startswith("toolu_") and mapped != "call.abc:1"
    assert sent[1]["content"][1]["id"] == "call_ok-2"
    assert sent[2]["content"] == [
        {"type": "tool_result", "tool_use_id": mapped, "content": "rain"},
        {"type": "tool_result", "tool_use_id": "call_ok-2", "content": "boom", "is_error": True},
        {"type": "text", "text": "Thanks. Which is warmer?"},
    ]


def test_images_base64_data_url_and_in_tool_results() -> None:
    png = "iVBORw0KGgo="
    history = (
        Message.user("Compare", Image("image/png", data=png), Image("image/jpeg", url="data:image/jpeg;base64,/9j/")),
        Message("assistant", (ToolCall("toolu_1", "snap", {}),)),
        Message.tool(ToolResult("toolu_1", "snap", (Text("here"), Image("image/png", data=png)))),
    )
    sent = body(ask(*history))["messages"]
    assert sent[0]["content"][1:] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/"}},
    ]
    assert sent[2]["content"][0]["content"] == [
        {"type": "text", "text": "here"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}},
    ]


def test_reasoning_is_replayed_only_to_anthropic_and_only_when_signed() -> None:
    own = Reasoning("plan", signature="sig1", provider="claude-api", model="claude-haiku-4-5")
    redacted = Reasoning(redacted="EncryptedBlob", provider="claude-api")
    cut = Reasoning("half a thought", provider="claude-api")
    foreign = Reasoning("gemini thoughts", signature="g-sig", provider="google")
    history = (Message.user("q"), Message("assistant", (own, redacted, cut, foreign, Text("answer"))),
               Message.user("more"))

    dropped = body(ask(*history))["messages"][1]["content"]
    assert dropped == [
        {"type": "thinking", "thinking": "plan", "signature": "sig1"},
        {"type": "redacted_thinking", "data": "EncryptedBlob"},
        {"type": "text", "text": "answer"},
    ]
    as_text = body(ask(*history, foreign_reasoning="text"))["messages"][1]["content"]
    assert {"type": "text", "text": "<thinking>gemini thoughts</thinking>"} in as_text
    assert all(b.get("signature") != "g-sig" for b in as_text)


def test_thinking_budget_and_adaptive_forms() -> None:
    legacy = body(ask(Message.user("q"), reasoning="high", temperature=0.3))
    assert legacy["thinking"] == {"type": "enabled", "budget_tokens": 16384}
    assert legacy["max_tokens"] > 16384
    assert "temperature" not in legacy
    modern = body(ask(Message.user("q"), reasoning="medium"), "claude-sonnet-5")
    assert modern["thinking"] == {"type": "adaptive"}
    assert modern["output_config"] == {"effort": "medium"}
    assert body(ask(Message.user("q"), reasoning="none"))["thinking"] == {"type": "disabled"}
    assert "thinking" not in body(ask(Message.user("q"), reasoning="none"), "claude-opus-5-5")
    with pytest.raises(CapabilityError, match="extended thinking"):
        body(ask(Message.user("q"), tools=(WEATHER,), force_tool="weather", reasoning="low"))


def test_cache_breakpoints_with_ttl() -> None:
    sent = body(ask(Message.user("q"), system="sys", tools=(WEATHER,), options={"cache": "1h"}))
    mark = {"type": "ephemeral", "ttl": "1h"}
    assert sent["system"][0]["cache_control"] == mark
    assert sent["tools"][-1]["cache_control"] == mark
    assert sent["messages"][-1]["content"][-1]["cache_control"] == mark
    assert "cache_control" not in json.dumps(body(ask(Message.user("q"), system="sys")))


# --- failures ----------------------------------------------------------------------------------------


def error_body(kind: str, message: str) -> bytes:
    return json.dumps({"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_1"}).encode()


async def test_529_overloaded_is_retried_then_unavailable() -> None:
    calls: list[int] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        calls.append(1)
        return httpx2.Response(529, content=error_body("overloaded_error", "Overloaded"))

    with pytest.raises(ProviderUnavailable, match="Overloaded") as info:
        await AnthropicMessages(ReplayTransport(handler, attempts=3)).complete(ask(Message.user("hi")), target())
    assert info.value.status == 529
    assert len(calls) == 3


async def test_429_reads_retry_after_and_ratelimit_reset_headers() -> None:
    quote = ("This request would exceed the rate limit for your organization of 20,000 input tokens per minute.")
    responses = [
        httpx2.Response(429, headers={"retry-after": "7"}, content=error_body("rate_limit_error", quote)),
    ]
    transport = ReplayTransport(lambda r: responses[0])
    with pytest.raises(RateLimitError) as info:
        await AnthropicMessages(transport).complete(ask(Message.user("hi")), target())
    assert info.value.retry_after == 7.0
    assert "20,000 input tokens per minute" in str(info.value)

    now = datetime(2026, 5, 28, 22, 16, tzinfo=UTC).timestamp()
    headers = {
        "anthropic-ratelimit-input-tokens-remaining": "0",
        "anthropic-ratelimit-input-tokens-reset": "2026-05-28T22:16:30Z",
        "anthropic-ratelimit-requests-remaining": "19999",
        "anthropic-ratelimit-requests-reset": "2026-05-28T22:16:01Z",
    }
    assert ratelimit_reset(headers, now=now) == pytest.approx(30.0)

    soon = (datetime.now(UTC) + timedelta(seconds=12)).strftime("%Y-%m-%dT%H:%M:%SZ")
    only_headers = {"anthropic-ratelimit-tokens-remaining": "0", "anthropic-ratelimit-tokens-reset": soon}
    limited = ReplayTransport(lambda r: httpx2.Response(429, headers=only_headers,
                                                       content=error_body("rate_limit_error", quote)))
    with pytest.raises(RateLimitError) as info:
        await AnthropicMessages(limited).complete(ask(Message.user("hi")), target())
    assert info.value.retry_after is not None and 9.0 <= info.value.retry_after <= 12.0


async def test_context_overflow_403_and_stream_error_event() -> None:
    overflow = error_body("invalid_request_error", "prompt is too long: 200251 tokens > 200000 maximum")
    transport = ReplayTransport(lambda r: httpx2.Response(400, content=overflow), attempts=3)
    with pytest.raises(ContextWindowExceeded) as info:
        await AnthropicMessages(transport).complete(ask(Message.user("hi")), target())
    assert (info.value.used, info.value.limit) == (200251, 200000)

    denied = ReplayTransport(lambda r: httpx2.Response(403, content=error_body("permission_error", "not allowed")),
                             attempts=3)
    with pytest.raises(AuthenticationError, match="permissions"):
        await AnthropicMessages(denied).complete(ask(Message.user("hi")), target())

    sse = (
        'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","usage":{"input_tokens":5}}}\n\n'
        'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
        '"content_block":{"type":"text","text":""}}\n\n'
        'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        '"delta":{"type":"text_delta","text":"Hel"}}\n\n'
        'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
    )
    streaming = ReplayTransport(lambda r: httpx2.Response(200, headers={"content-type": "text/event-stream"},
                                                         content=sse.encode()), attempts=3)
    seen: list[str] = []
    with pytest.raises(ProviderUnavailable, match="overloaded_error"):
        async for event in AnthropicMessages(streaming).stream(ask(Message.user("hi")), target()):
            seen.append(event.type)
    assert "text_delta" in seen


async def test_parallel_tool_calls_stream_with_interleaved_arguments() -> None:
    def event(kind: str, **data: Any) -> str:
        return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n"

    def args(index: int, fragment: str) -> str:
        return event("content_block_delta", index=index, delta={"type": "input_json_delta", "partial_json": fragment})

    sse = "".join([
        event("message_start", message={"id": "msg_1", "usage": {"input_tokens": 50, "output_tokens": 1}}),
        event("content_block_start", index=0, content_block={"type": "tool_use", "id": "toolu_a", "name": "weather",
                                                             "input": {}}),
        args(0, '{"city": "Os'),
        event("content_block_start", index=1, content_block={"type": "tool_use", "id": "toolu_b", "name": "weather",
                                                             "input": {}}),
        args(1, '{"city": "Rome"}'),
        args(0, 'lo"}'),
        event("content_block_stop", index=0),
        event("content_block_stop", index=1),
        event("message_delta", delta={"stop_reason": "tool_use"}, usage={"output_tokens": 40}),
        event("message_stop"),
    ])
    transport = ReplayTransport(lambda r: httpx2.Response(200, headers={"content-type": "text/event-stream"},
                                                         content=sse.encode()), attempts=3)
    acc = Accumulator("claude-api", "claude-haiku-4-5")
    async for e in AnthropicMessages(transport).stream(ask(Message.user("hi"), tools=(WEATHER,)), target()):
        acc.add(e)
    reply = acc.message()
    assert [(c.id, dict(c.arguments)) for c in reply.tool_calls] == [("toolu_a", {"city": "Oslo"}),
                                                                     ("toolu_b", {"city": "Rome"})]
    assert reply.finish_reason == "tool_calls"
    assert reply.usage is not None and (reply.usage.input, reply.usage.output) == (50, 40)
