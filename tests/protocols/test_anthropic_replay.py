"""Every recording in realdata/anthropic replayed through the real Transport and decoder.

The recorded response bytes are served by httpx2.MockTransport inside ironspire's own Transport,
so status handling, retries, SSE framing and decoding all run as they do against the API. Where
a recording holds its request body, the same conversation is built in neutral form and our
encoder must produce an equivalent request (keys the other client sent by its own choice, such as
an empty tool description, are normalised away; everything semantic must match).
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ironspire.catalog.models import Registry
from ironspire.catalog.providers import builtin
from ironspire.errors import AuthenticationError, BadRequest, ModelNotFound, ProviderUnavailable
from ironspire.messages import (
    Accumulator,
    Image,
    Message,
    Reasoning,
    StreamEvent,
    Text,
    TextDelta,
    ToolCall,
    ToolResult,
    Usage,
)
from ironspire.protocols.anthropic_messages import AnthropicMessages
from ironspire.protocols.base import ChatRequest, Secrets, Target, Tool

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from support.recordings import Interaction, load
from support.replay import ReplayTransport, Server

KEY = "sk-ant-test-0123456789abcdef"


def target(model_id: str, **facts: Any) -> Target:
    base = Registry().get("claude-api", "claude-haiku-4-5")
    model = replace(base, id=model_id, **facts)
    return Target(builtin("claude-api"), model, "https://api.anthropic.com", Secrets({"api_key": KEY}))


def recording(realdata: Path, name: str) -> list[Interaction]:
    return load(realdata / "anthropic" / name)


async def run(adapter: AnthropicMessages, request: ChatRequest, tgt: Target, *, stream: bool) -> Message:
    if not stream:
        return await adapter.complete(request, tgt)
    acc = Accumulator(tgt.provider.id, tgt.model.id)
    events: list[StreamEvent] = []
    async for event in adapter.stream(request, tgt):
        events.append(event)
        acc.add(event)
    assert any(isinstance(e, TextDelta) for e in events) or acc.message().tool_calls or acc.message().reasoning
    return acc.message()


def normalise(body: dict[str, Any]) -> dict[str, Any]:
    """Drops what is neutral in meaning: empty descriptions, is_error false, cache markers, beta knobs."""

    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                if k == "cache_control" or (k == "description" and v == "") or (k == "is_error" and v is False):
                    continue
                out[k] = clean(v)
            return out
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    body = clean(body)
    body.pop("stream", None)
    if isinstance(body.get("thinking"), dict):
        body["thinking"].pop("display", None)
    return body


def same_request(ours: dict[str, Any], recorded: dict[str, Any], *, ignore: tuple[str, ...] = ()) -> None:
    a, b = normalise(ours), normalise(recorded)
    for key in ignore:
        a.pop(key, None)
        b.pop(key, None)
    assert a == b


# --- streamed thinking + tool use + tool result round trip ----------------------------------------


async def test_thinking_tool_chain_stream_and_round_trip(realdata: Path) -> None:
    served = Server(recording(realdata, "llm-anthropic__test_anthropic__test_fixed_version_tool_chain_with_"
                                        "thinking_display_regression.yaml"))
    recorded = [i.request_json for i in served.queue]
    adapter = AnthropicMessages(ReplayTransport(served))
    tgt = target("claude-haiku-4-5-20251001")
    tool = Tool("fixed_version", "Return a fixed test version string", {"properties": {}, "type": "object"})
    user = Message.user("Use the fixed_version tool. Then tell me the version and make one short joke about it. "
                        "Think about it first.")
    first = ChatRequest((user,), tools=(tool,), max_tokens=64000, reasoning="low", temperature=1.0)

    reply = await run(adapter, first, tgt, stream=True)

    reasoning, call = reply.parts
    assert isinstance(reasoning, Reasoning) and isinstance(call, ToolCall)
    assert reasoning.text.startswith("The user wants me to:\n1. Use the fixed_version tool")
    assert reasoning.signature is not None and reasoning.signature.startswith("EoQDCm0IDhgCKkCDzGs2kL2P")
    assert reasoning.signature.endswith("BwUxgB")
    assert (reasoning.provider, reasoning.model) == ("claude-api", "claude-haiku-4-5-20251001")
    assert (call.id, call.name, dict(call.arguments)) == ("toolu_01825dXWLSoJwCst1qTsiWdb", "fixed_version", {})
    assert reply.finish_reason == "tool_calls"
    assert reply.usage == Usage(input=598, output=92, reasoning=53)
    # The recorded request sent temperature 1.0 with thinking on; 1.0 is the only value the API
    # allows then, so we leave it out rather than send it.
    same_request(served.body(0), recorded[0], ignore=("temperature",))

    result = Message.tool(ToolResult(call.id, "fixed_version", (Text("0.32a0"),)))
    second = replace(first, messages=(user, reply, result))
    answer = await run(adapter, second, tgt, stream=True)

    assert answer.text.startswith("The version is **0.32a0**.")
    assert answer.text.endswith("so plenty of room to grow!)")
    assert answer.finish_reason == "stop"
    assert answer.usage == Usage(input=707, output=89)
    # The thinking block and its signature go back byte-for-byte, before the tool_use.
    same_request(served.body(1), recorded[1], ignore=("temperature",))


async def test_streamed_tool_call_with_empty_arguments(realdata: Path) -> None:
    served = Server(recording(realdata, "llm-anthropic__test_anthropic__test_stream_events_tool_calls.yaml"))
    recorded = served.queue[0].request_json
    adapter = AnthropicMessages(ReplayTransport(served))
    tgt = target("claude-haiku-4-5-20251001")
    request = ChatRequest((Message.user("Generate one name for a pet pelican"),),
                          tools=(Tool("pelican_name_generator", "", {"properties": {}, "type": "object"}),),
                          max_tokens=8192, temperature=1.0)

    reply = await run(adapter, request, tgt, stream=True)

    assert reply.tool_calls == [ToolCall("toolu_01CzN6riCPqw4pVSuTd9Dwn7", "pelican_name_generator", {},
                                         provider="claude-api", model="claude-haiku-4-5-20251001")]
    assert reply.text == ""
    assert reply.finish_reason == "tool_calls"
    assert reply.usage == Usage(input=543, output=40)
    same_request(served.body(0), recorded)


# --- plain text, system prompt, images ------------------------------------------------------------


async def test_plain_text_with_system_prompt(realdata: Path) -> None:
    served = Server(recording(realdata, "pydantic-ai__test_anthropic__test_anthropic_model_instructions.yaml"))
    recorded = served.queue[0].request_json
    adapter = AnthropicMessages(ReplayTransport(served))
    tgt = target("claude-3-opus-latest")
    request = ChatRequest((Message.user("What is the capital of France?"),),
                          system="You are a helpful assistant.\n\n", max_tokens=4096)

    reply = await run(adapter, request, tgt, stream=False)

    assert reply.parts == (Text("The capital of France is Paris."),)
    assert reply.finish_reason == "stop"
    assert reply.usage == Usage(input=20, output=10)
    assert (reply.provider, reply.model) == ("claude-api", "claude-3-opus-latest")
    same_request(served.body(0), recorded)
    sent = served.sent[0].headers
    assert sent["x-api-key"] == KEY
    assert sent["anthropic-version"] == "2023-06-01"
    assert served.sent[0].url == "https://api.anthropic.com/v1/messages"


async def test_plain_text_stream(realdata: Path) -> None:
    served = Server(recording(realdata, "pydantic-ai__test_anthropic__test_request_stream_fallback_for_high_"
                                        "max_tokens.yaml"))
    recorded = served.queue[0].request_json
    adapter = AnthropicMessages(ReplayTransport(served))
    tgt = target("claude-sonnet-4-5")
    request = ChatRequest((Message.user("What is 1+1? Answer with just the number."),), max_tokens=32000)

    reply = await run(adapter, request, tgt, stream=True)

    assert reply.text == "2"
    assert reply.finish_reason == "stop"
    assert reply.usage == Usage(input=20, output=5)
    same_request(served.body(0), recorded)
    assert served.body(0)["stream"] is True


async def test_image_by_url(realdata: Path) -> None:
    served = Server(recording(realdata, "pydantic-ai__test_anthropic__test_image_url_input.yaml"))
    recorded = served.queue[0].request_json
    adapter = AnthropicMessages(ReplayTransport(served))
    tgt = target("claude-haiku-4-5", vision=True)
    url = "https://t3.ftcdn.net/jpg/00/85/79/92/360_F_85799278_0BBGV9OAdQDTLnKwAPBCcg1J7QtiieJY.jpg"
    request = ChatRequest((Message.user("What is this vegetable?", Image("image/jpeg", url=url)),), max_tokens=4096)

    reply = await run(adapter, request, tgt, stream=False)

    assert reply.text.startswith("This is a potato.")
    assert reply.usage == Usage(input=296, output=91)
    same_request(served.body(0), recorded)


# --- extended thinking -----------------------------------------------------------------------------


async def test_thinking_signature_kept_and_replayed_unchanged(realdata: Path) -> None:
    served = Server(recording(realdata, "pydantic-ai__test_anthropic__test_anthropic_model_thinking_part.yaml"))
    recorded = [i.request_json for i in served.queue]
    recorded_first = served.queue[0].json["content"]
    adapter = AnthropicMessages(ReplayTransport(served))
    tgt = target("claude-sonnet-4-5", reasoning=True)
    user = Message.user("How do I cross the street?")
    first = ChatRequest((user,), max_tokens=4096, reasoning="low")

    reply = await run(adapter, first, tgt, stream=False)

    reasoning, text = reply.parts
    assert isinstance(reasoning, Reasoning) and isinstance(text, Text)
    assert reasoning.signature == recorded_first[0]["signature"]
    assert reasoning.text == recorded_first[0]["thinking"]
    assert text.text == recorded_first[1]["text"]
    assert reply.usage == Usage(input=43, output=321)
    same_request(served.body(0), recorded[0])

    follow = Message.user("Considering the way to cross the street, analogously, how do I cross the river?")
    answer = await run(adapter, replace(first, messages=(user, reply, follow)), tgt, stream=False)

    assert answer.text.startswith("# How to Cross a River (Using the Street-Crossing Analogy)")
    assert answer.reasoning.startswith("This is an interesting analogy question.")
    assert answer.usage == Usage(input=354, output=525)
    same_request(served.body(1), recorded[1])


async def test_thinking_stream_deltas_and_signature(realdata: Path) -> None:
    served = Server(recording(realdata, "pydantic-ai__test_anthropic__test_anthropic_model_thinking_part_"
                                        "stream.yaml"))
    recorded = served.queue[0].request_json
    body = served.queue[0].body.decode()
    adapter = AnthropicMessages(ReplayTransport(served))
    tgt = target("claude-sonnet-4-0", reasoning=True)
    request = ChatRequest((Message.user("How do I cross the street?"),), max_tokens=4096, reasoning="low")

    reply = await run(adapter, request, tgt, stream=True)

    reasoning = reply.parts[0]
    assert isinstance(reasoning, Reasoning)
    assert reasoning.text.startswith("This is a straightforward question about pedestrian safety.")
    signatures = [json.loads(line[6:])["delta"]["signature"] for line in body.splitlines()
                  if line.startswith("data: ") and "signature_delta" in line]
    assert reasoning.signature == "".join(signatures) and reasoning.signature
    assert isinstance(reply.parts[1], Text) and reply.text
    assert reply.finish_reason == "stop"
    assert reply.usage is not None and reply.usage.input == 43
    same_request(served.body(0), recorded)


async def test_tool_round_trip_with_thinking(realdata: Path) -> None:
    served = Server(recording(realdata, "pydantic-ai__test_anthropic__test_anthropic_tool_with_thinking.yaml"))
    recorded = [i.request_json for i in served.queue]
    adapter = AnthropicMessages(ReplayTransport(served))
    tgt = target("claude-sonnet-4-0", reasoning=True)
    schema = {"additionalProperties": False, "properties": {}, "type": "object"}
    user = Message.user("What is the largest city in the user country?")
    first = ChatRequest((user,), tools=(Tool("get_user_country", "", schema),), tool_choice="auto",
                        max_tokens=4096, reasoning="medium", options={"thinking_budget": 3000})

    reply = await run(adapter, first, tgt, stream=False)

    kinds = [type(p).__name__ for p in reply.parts]
    assert kinds == ["Reasoning", "Text", "ToolCall"]
    assert reply.tool_calls[0].id == "toolu_01YGzqpRE16Vricda3Aqcejo"
    assert reply.finish_reason == "tool_calls"
    assert reply.usage == Usage(input=398, output=155)
    same_request(served.body(0), recorded[0])

    result = Message.tool(ToolResult("toolu_01YGzqpRE16Vricda3Aqcejo", "get_user_country", (Text("Mexico"),)))
    answer = await run(adapter, replace(first, messages=(user, reply, result)), tgt, stream=False)

    assert "**Mexico City**" in answer.text
    assert answer.usage == Usage(input=566, output=126)
    same_request(served.body(1), recorded[1])


# --- prompt caching ---------------------------------------------------------------------------------


async def test_cache_read_and_write_usage(realdata: Path) -> None:
    served = Server(recording(realdata, "pydantic-ai__test_anthropic__test_anthropic_cache_real_api.yaml"))
    recorded = [i.request_json for i in served.queue]
    adapter = AnthropicMessages(ReplayTransport(served))
    tgt = target("claude-sonnet-4-5", prompt_caching=True)
    question = recorded[0]["messages"][0]["content"][0]["text"]
    user = Message.user(question)
    first = ChatRequest((user,), system="You are a helpful assistant.", max_tokens=4096, options={"cache": True})

    reply = await run(adapter, first, tgt, stream=False)

    assert reply.text.startswith("# What is Python?")
    assert reply.usage == Usage(input=3, output=406, cache_read=1111)
    # The other client used request-level caching; we mark explicit breakpoints instead.
    sent = served.body(0)
    assert sent["system"] == [{"type": "text", "text": "You are a helpful assistant.",
                               "cache_control": {"type": "ephemeral"}}]
    assert sent["messages"][-1]["content"][-1]["cache_control"] == {"type": "ephemeral"}
    sent["system"] = "You are a helpful assistant."
    same_request(sent, recorded[0])

    follow = Message.user("Can you summarize that in one sentence?")
    answer = await run(adapter, replace(first, messages=(user, reply, follow)), tgt, stream=False)

    assert answer.usage == Usage(input=3, output=33, cache_read=1111, cache_write=418)
    assert answer.usage.prompt == 1532
    sent = served.body(1)
    sent["system"] = "You are a helpful assistant."
    same_request(sent, recorded[1])


# --- errors the recordings hold ---------------------------------------------------------------------


async def test_401_is_authentication_error_and_not_retried(realdata: Path) -> None:
    served = Server(recording(realdata, "mirascope__test_authentication_error__anthropic_claude_sonnet_4_0.yaml"))
    adapter = AnthropicMessages(ReplayTransport(served, attempts=3))
    request = ChatRequest((Message.user("This should fail with AuthenticationError"),), max_tokens=16000)

    with pytest.raises(AuthenticationError) as info:
        await adapter.complete(request, target("claude-sonnet-4-0"))

    assert info.value.status == 401
    assert "invalid x-api-key" in str(info.value)
    assert KEY not in str(info.value)
    assert len(served.sent) == 1


async def test_400_invalid_request_is_bad_request(realdata: Path) -> None:
    served = Server(recording(realdata, "pydantic-ai__test_anthropic__test_anthropic_explicit_effort_xhigh_"
                                        "unsupported_model_errors.yaml"))
    adapter = AnthropicMessages(ReplayTransport(served, attempts=3))

    with pytest.raises(BadRequest) as info:
        await adapter.complete(ChatRequest((Message.user("What is 2+2?"),)), target("claude-opus-4-6"))

    assert type(info.value) is BadRequest
    assert info.value.status == 400
    assert "does not support effort level 'xhigh'" in str(info.value)
    assert len(served.sent) == 1


async def test_404_unknown_model_suggests_close_names(realdata: Path) -> None:
    served = Server(recording(realdata, "pydantic-ai__test_model_name_suggestions__test_model_name_suggestion_"
                                        "anthropic_.yaml"))
    adapter = AnthropicMessages(ReplayTransport(served, attempts=3))

    with pytest.raises(ModelNotFound) as info:
        await adapter.complete(ChatRequest((Message.user("hello"),)), target("claude-sonet-4-5"))

    assert info.value.status == 404
    assert info.value.model == "claude-sonet-4-5"
    assert info.value.suggestions and all(s.startswith("claude-") for s in info.value.suggestions)
    assert len(served.sent) == 1


async def test_stream_cut_before_message_stop_is_not_a_message(realdata: Path) -> None:
    rec = recording(realdata, "pydantic-ai__test_anthropic__test_request_stream_fallback_for_high_max_tokens.yaml")[0]
    rec.body = rec.body[: rec.body.index(b"event: message_delta")]
    adapter = AnthropicMessages(ReplayTransport(Server([rec])))
    request = ChatRequest((Message.user("What is 1+1? Answer with just the number."),))

    with pytest.raises(ProviderUnavailable, match="stream ended early"):
        async for _ in adapter.stream(request, target("claude-sonnet-4-5")):
            pass


async def test_message_stop_ends_a_tool_call_turn_even_without_a_stop_reason(realdata: Path) -> None:
    """message_stop is Anthropic's end event: with no stop_reason before it (a proxy that drops
    message_delta), the turn is still finished and its reason inferred from the calls."""
    rec = recording(realdata, "llm-anthropic__test_anthropic__test_stream_events_tool_calls.yaml")[0]
    events = [block for block in rec.body.split(b"\n\n") if block.strip()]
    kept = [e for e in events if b"event: message_delta" not in e]
    assert len(kept) == len(events) - 1 and kept[-1].startswith(b"event: message_stop")
    rec.body = b"\n\n".join(kept) + b"\n\n"
    adapter = AnthropicMessages(ReplayTransport(Server([rec])))
    request = ChatRequest((Message.user("x"),))
    acc = Accumulator("claude-api", "claude-sonnet-4-5")
    async for event in adapter.stream(request, target("claude-sonnet-4-5")):
        acc.add(event)
    message = acc.message()
    assert message.tool_calls and message.finish_reason == "tool_calls"
