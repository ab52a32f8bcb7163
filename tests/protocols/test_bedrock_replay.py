"""Real Bedrock Converse traffic (JSON and binary event streams) replayed through the real
transport and decoder; loopback fakes for throttling and an exception frame mid-stream.

Frames for cases no recording holds are built by ``frame`` below. botocore ships only the
decoder and the smithy encoder needs Python 3.12, so the encoder is written here for tests
only, and is first checked to reproduce the recorded frames byte for byte.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from botocore.eventstream import EventStreamBuffer

from ironspire.catalog.models import ModelSpec
from ironspire.catalog.providers import builtin
from ironspire.errors import (
    BadRequest,
    ModelNotFound,
    ProviderUnavailable,
    RateLimitError,
)
from ironspire.messages import (
    Finish,
    Image,
    Message,
    Reasoning,
    StreamEvent,
    Text,
    ToolResult,
    Usage,
    UsageEvent,
)
from ironspire.protocols.base import ChatRequest, Secrets, Target, Tool
from ironspire.protocols.bedrock_converse import BedrockConverse
from ironspire.transport import RetryPolicy, Transport
from support.recordings import Interaction, load
from support.replay import ReplayTransport, Server, collect, loopback

RUNTIME = "https://bedrock-runtime.us-east-1.amazonaws.com"
SECRETS = Secrets({"access_key_id": "AKIDEXAMPLE", "secret_access_key": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"})

CAPITAL = Tool("get_capital", "Get the capital of a country.", {
    "additionalProperties": False, "properties": {"country": {"description": "The country name.", "type": "string"}},
    "required": ["country"], "type": "object"})


def target(model: str, *, base_url: str = "", reasoning: bool = False) -> Target:
    spec = ModelSpec("bedrock", model, model, 300_000, 10_000, vision=True, reasoning=reasoning)
    return Target(builtin("bedrock"), spec, base_url, SECRETS, {"region": "us-east-1"})


def frame(headers: Mapping[str, str], payload: bytes) -> bytes:
    """One AWS event-stream message: prelude, string headers (type 7), payload, CRC32s."""
    head = b"".join(
        bytes([len(k)]) + k.encode() + b"\x07" + struct.pack(">H", len(v.encode())) + v.encode()
        for k, v in headers.items()
    )
    prelude = struct.pack(">II", 12 + len(head) + len(payload) + 4, len(head))
    prelude += struct.pack(">I", binascii.crc32(prelude))
    message = prelude + head + payload
    return message + struct.pack(">I", binascii.crc32(message))


def event(kind: str, payload: Mapping[str, Any]) -> bytes:
    return frame({":event-type": kind, ":content-type": "application/json", ":message-type": "event"},
                 json.dumps(payload).encode())


def replaying(interactions: Iterable[Interaction], chunk: int | None = None) -> Server:
    """The runtime calls only (image recordings also hold the GET that fetched the picture),
    passing on the content type and the error type Bedrock names in a header."""
    return Server(interactions, chunk, only=lambda i: "bedrock-runtime" in i.uri,
                  keep=("content-type", "x-amzn-errortype"))


@asynccontextmanager
async def adapter(server: Server) -> AsyncIterator[BedrockConverse]:
    async with ReplayTransport(server) as transport:
        yield BedrockConverse(transport)


def recording(realdata: Path, name: str) -> list[Interaction]:
    return load(realdata / "bedrock" / name)


COVERED = {
    "pydantic-ai__test_bedrock__test_bedrock_error.yaml",
    "pydantic-ai__test_bedrock__test_bedrock_model.yaml",
    "pydantic-ai__test_bedrock__test_bedrock_model_retry.yaml",
    "pydantic-ai__test_bedrock__test_bedrock_model_stream.yaml",
    "pydantic-ai__test_bedrock__test_bedrock_model_iter_stream.yaml",
    "pydantic-ai__test_bedrock__test_bedrock_model_thinking_part_anthropic.yaml",
    "pydantic-ai__test_bedrock__test_image_url_input.yaml",
    "ai__amazon-bedrock__amazon-bedrock-reasoning.chunks.txt",
}


def test_every_bedrock_recording_is_replayed(realdata: Path) -> None:
    assert {p.name for p in (realdata / "bedrock").iterdir()} == COVERED


def test_test_encoder_reproduces_recorded_frames(realdata: Path) -> None:
    for name in ("pydantic-ai__test_bedrock__test_bedrock_model_stream.yaml",
                 "pydantic-ai__test_bedrock__test_bedrock_model_iter_stream.yaml"):
        for rec in recording(realdata, name):
            buffer = EventStreamBuffer()
            buffer.add_data(rec.body)
            rebuilt = b"".join(frame(m.headers, m.payload) for m in buffer)  # type: ignore[arg-type]
            assert rebuilt == rec.body


# --- Converse (JSON) --------------------------------------------------------------------------


async def test_converse_plain_text(realdata: Path) -> None:
    recs = recording(realdata, "pydantic-ai__test_bedrock__test_bedrock_model.yaml")
    server = replaying(recs)
    tgt = target("us.amazon.nova-micro-v1:0")
    async with adapter(server) as bedrock:
        message = await bedrock.complete(ChatRequest((Message.user("Hello!"),), system="You are a chatbot."), tgt)
    assert message.text.startswith("Hello! How can I assist you today?")
    assert message.usage == Usage(input=7, output=30)
    assert message.finish_reason == "stop"
    sent = server.sent[0]
    assert str(sent.url) == recs[0].uri  # model id with ':' percent-encoded in the path
    assert sent.url.raw_path == b"/model/us.amazon.nova-micro-v1%3A0/converse"
    body = server.body(0)
    assert body["messages"] == recs[0].request_json["messages"]
    assert body["system"] == recs[0].request_json["system"]


async def test_tool_use_then_error_result(realdata: Path) -> None:
    recs = recording(realdata, "pydantic-ai__test_bedrock__test_bedrock_model_retry.yaml")
    server = replaying(recs)
    tgt = target("us.amazon.nova-micro-v1:0")
    first_q = Message.user("What is the capital of France?")
    kw: dict[str, Any] = {"system": "You are a helpful chatbot.", "tools": (CAPITAL,), "tool_choice": "auto",
                          "temperature": 0.0}
    async with adapter(server) as bedrock:
        first = await bedrock.complete(ChatRequest((first_q,), **kw), tgt)
        (call,) = first.tool_calls
        assert (call.id, call.name, dict(call.arguments)) == (
            "tooluse_Ze_bgl9CSqu8aJv7XD-_Dw", "get_capital", {"country": "France"})
        assert first.finish_reason == "tool_calls" and first.usage == Usage(input=426, output=66)
        reply = Text("The country is not supported.\n\nFix the errors and try again.")
        failed = ToolResult(call.id, call.name, (reply,), is_error=True)
        second = await bedrock.complete(ChatRequest((first_q, first, Message.tool(failed)), **kw), tgt)
    assert "The capital of France is Paris." in second.text
    assert second.finish_reason == "stop" and second.usage == Usage(input=531, output=76)
    for n in range(2):
        body, recorded = server.body(n), recs[n].request_json
        assert body["messages"] == recorded["messages"]
        assert body["toolConfig"] == recorded["toolConfig"]
        assert body["inferenceConfig"] == recorded["inferenceConfig"]


async def test_reasoning_with_signature_replays_to_the_same_model(realdata: Path) -> None:
    recs = recording(realdata, "pydantic-ai__test_bedrock__test_bedrock_model_thinking_part_anthropic.yaml")
    server = replaying(recs)
    tgt = target("us.anthropic.claude-sonnet-4-20250514-v1:0", reasoning=True)
    question = Message.user("How do I cross the street?")
    async with adapter(server) as bedrock:
        first = await bedrock.complete(ChatRequest((question,), reasoning="low"), tgt)
        reasoning, text = first.parts
        assert isinstance(reasoning, Reasoning) and reasoning.text.startswith("This is a straightforward question")
        assert reasoning.signature and reasoning.signature.startswith("Eu4CCkgIBxAB")
        assert (reasoning.provider, reasoning.model) == ("bedrock", "us.anthropic.claude-sonnet-4-20250514-v1:0")
        assert isinstance(text, Text) and text.text.startswith("Here are the basic steps")
        assert first.usage == Usage(input=42, output=313)
        follow = Message.user("Considering the way to cross the street, analogously, how do I cross the river?")
        second = await bedrock.complete(ChatRequest((question, first, follow), reasoning="low"), tgt)
    assert second.reasoning.startswith("The human is asking about crossing a river")
    for n in range(2):
        body, recorded = server.body(n), recs[n].request_json
        assert body["messages"] == recorded["messages"]
        assert body["additionalModelRequestFields"] == recorded["additionalModelRequestFields"]


async def test_image_bytes(realdata: Path) -> None:
    recs = recording(realdata, "pydantic-ai__test_bedrock__test_image_url_input.yaml")
    download = next(i for i in recs if i.method == "GET")
    image = Image("image/jpeg", data=base64.b64encode(download.body).decode())
    server = replaying(recs)
    async with adapter(server) as bedrock:
        message = await bedrock.complete(ChatRequest((Message.user("What is this vegetable?", image),)),
                                         target("us.amazon.nova-pro-v1:0"))
    assert message.text.startswith("The image shows a potato.")
    assert message.usage == Usage(input=1837, output=82)
    post = next(i for i in recs if i.method == "POST")
    assert server.body(0)["messages"] == post.request_json["messages"]


async def test_invalid_model_id_is_model_not_found(realdata: Path) -> None:
    recs = recording(realdata, "pydantic-ai__test_bedrock__test_bedrock_error.yaml")
    server = replaying(recs)
    async with adapter(server) as bedrock:
        with pytest.raises(ModelNotFound) as info:
            await bedrock.complete(ChatRequest((Message.user("hello"),)), target("us.does-not-exist-model-v1:0"))
    assert info.value.status == 400 and info.value.model == "us.does-not-exist-model-v1:0"
    assert str(server.sent[0].url) == recs[0].uri
    assert server.body(0)["messages"] == recs[0].request_json["messages"]


# --- ConverseStream (binary event stream) ------------------------------------------------------


@pytest.mark.parametrize("chunk", [None, 9])
async def test_converse_stream_text(realdata: Path, chunk: int | None) -> None:
    recs = recording(realdata, "pydantic-ai__test_bedrock__test_bedrock_model_stream.yaml")
    server = replaying(recs, chunk)
    tgt = target("us.amazon.nova-micro-v1:0")
    request = ChatRequest((Message.user("What is the capital of France?"),), system="You are a helpful chatbot.",
                          temperature=0.0)
    async with adapter(server) as bedrock:
        events, message = await collect(bedrock, request, tgt)
    assert message.text.startswith("The capital of France is Paris. Paris is not only the capital city")
    assert message.text.endswith('"The City of Love."')
    # Usage comes in the metadata event after messageStop, and is reported before the finish.
    assert events[-2] == UsageEvent(Usage(input=13, output=82))
    assert events[-1] == Finish("stop", "end_turn") and message.usage == Usage(input=13, output=82)
    assert server.sent[0].url.raw_path == b"/model/us.amazon.nova-micro-v1%3A0/converse-stream"
    body = server.body(0)
    assert body["messages"] == recs[0].request_json["messages"]
    assert body["system"] == recs[0].request_json["system"]
    assert body["inferenceConfig"] == recs[0].request_json["inferenceConfig"]


async def test_converse_stream_tool_use_round_trip(realdata: Path) -> None:
    recs = recording(realdata, "pydantic-ai__test_bedrock__test_bedrock_model_iter_stream.yaml")
    server = replaying(recs)
    tgt = target("us.amazon.nova-micro-v1:0")
    temperature = Tool("get_temperature", "Get the temperature in a city.", {
        "properties": {"city": {"description": "The city name.", "title": "City", "type": "string"}},
        "required": ["city"], "type": "object", "additionalProperties": False})
    capital = Tool("get_capital", "Get the capital of a country.", {
        "properties": {"country": {"description": "The country name.", "title": "Country", "type": "string"}},
        "required": ["country"], "type": "object", "additionalProperties": False})
    question = Message.user("What is the temperature of the capital of France?")
    kw: dict[str, Any] = {"system": "You are a helpful chatbot.", "tools": (capital, temperature)}
    async with adapter(server) as bedrock:
        events, first = await collect(bedrock, ChatRequest((question,), **kw), tgt)
        (call,) = first.tool_calls
        assert (call.id, call.name, dict(call.arguments)) == (
            "tooluse_lAG_zP8QRHmSYOwZzzaCqA", "get_temperature", {"city": "Paris"})
        assert first.text.startswith("<thinking> To find the temperature")
        assert events[-1] == Finish("tool_calls", "tool_use") and first.usage == Usage(input=471, output=91)
        result = Message.tool(ToolResult(call.id, call.name, (Text("30°C"),)))
        _, second = await collect(bedrock, ChatRequest((question, first, result), **kw), tgt)
    assert second.text == "The current temperature in Paris, the capital of France, is 30°C."
    assert second.usage == Usage(input=577, output=18) and second.finish_reason == "stop"
    for n in range(2):
        body, recorded = server.body(n), recs[n].request_json
        assert body["messages"] == recorded["messages"]
        assert body["toolConfig"] == recorded["toolConfig"]


async def test_reasoning_stream_from_decoded_events(realdata: Path) -> None:
    """vercel/ai's fixture keeps the decoded ConverseStream payloads; they are framed again
    here and go through the same binary decoder."""
    lines = (realdata / "bedrock" / "ai__amazon-bedrock__amazon-bedrock-reasoning.chunks.txt").read_text().splitlines()
    body = b"".join(event(kind, payload) for line in lines for kind, payload in json.loads(line).items())
    rec = Interaction("POST", RUNTIME + "/model/x/converse-stream", {}, None, 200,
                      {"content-type": "application/vnd.amazon.eventstream"}, body)
    async with adapter(replaying([rec], chunk=13)) as bedrock:
        _, message = await collect(bedrock, ChatRequest((Message.user("How many r's in strawberry?"),)),
                                   target("us.anthropic.claude-sonnet-4-20250514-v1:0", reasoning=True))
    reasoning, text = message.parts
    assert isinstance(reasoning, Reasoning)
    assert reasoning.text == ("Let me count the r's in \"strawberry\":\n\ns-t-r-a-w-b-e-r-r-y\n\nr appears at "
                              "positions 3, 8, and 9.\n\nSo there are 3 r's.")
    assert reasoning.signature and reasoning.signature.startswith("Ep0CCkgICxAB")
    assert isinstance(text, Text) and text.text.startswith("There are **3** r's in \"strawberry\"")
    assert message.usage == Usage(input=51, output=94) and message.finish_reason == "stop"


async def test_stream_cut_mid_frame_is_an_error(realdata: Path) -> None:
    rec = recording(realdata, "pydantic-ai__test_bedrock__test_bedrock_model_stream.yaml")[0]
    rec.body = rec.body[: len(rec.body) // 2]
    async with adapter(replaying([rec])) as bedrock:
        with pytest.raises(ProviderUnavailable, match="stream ended early"):
            await collect(bedrock, ChatRequest((Message.user("x"),)), target("us.amazon.nova-micro-v1:0"))


# --- loopback faults ---------------------------------------------------------------------------


async def test_loopback_throttling_is_rate_limit() -> None:
    answer = (429, {"content-type": "application/json",
                    "x-amzn-errortype": "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/"},
              b'{"message":"Too many requests, please wait before trying again."}')
    async with loopback([answer]) as (url, seen):
        transport = Transport(RetryPolicy(attempts=1))
        try:
            with pytest.raises(RateLimitError) as info:
                await BedrockConverse(transport).complete(ChatRequest((Message.user("hi"),)),
                                                          target("us.amazon.nova-micro-v1:0", base_url=url))
        finally:
            await transport.close()
    assert info.value.status == 429 and "Too many requests" in str(info.value)
    request_line, headers, _ = seen[0]
    assert request_line == "POST /model/us.amazon.nova-micro-v1%3A0/converse HTTP/1.1"
    assert headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "wJalrXUtnFEMI" not in str(info.value)


async def test_loopback_throttling_is_retried_then_succeeds() -> None:
    ok = {"output": {"message": {"role": "assistant", "content": [{"text": "fine"}]}}, "stopReason": "end_turn",
          "usage": {"inputTokens": 3, "outputTokens": 1, "totalTokens": 4}}
    answers = [(429, {"x-amzn-errortype": "ThrottlingException"}, b'{"message":"slow down"}'),
               (200, {"content-type": "application/json"}, json.dumps(ok).encode())]
    async with loopback(answers) as (url, seen):
        transport = Transport(RetryPolicy(attempts=2, base_delay=0.01))
        try:
            message = await BedrockConverse(transport).complete(ChatRequest((Message.user("hi"),)),
                                                                target("us.amazon.nova-micro-v1:0", base_url=url))
        finally:
            await transport.close()
    assert message.text == "fine" and len(seen) == 2


@pytest.mark.parametrize(("kind", "error"), [
    ("throttlingException", RateLimitError),
    ("modelStreamErrorException", ProviderUnavailable),
    ("validationException", BadRequest),
])
async def test_loopback_exception_frame_inside_stream(kind: str, error: type[Exception]) -> None:
    stream = (
        event("messageStart", {"role": "assistant"})
        + event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Par"}})
        + frame({":exception-type": kind, ":content-type": "application/json", ":message-type": "exception"},
                b'{"message":"Something went wrong mid-stream."}')
    )
    async with loopback([(200, {"content-type": "application/vnd.amazon.eventstream"}, stream)]) as (url, seen):
        transport = Transport(RetryPolicy(attempts=1))
        try:
            received: list[StreamEvent] = []
            with pytest.raises(error, match="mid-stream"):
                async for ev in BedrockConverse(transport).stream(ChatRequest((Message.user("hi"),)),
                                                                  target("us.amazon.nova-micro-v1:0", base_url=url)):
                    received.append(ev)
        finally:
            await transport.close()
    assert [type(e).__name__ for e in received] == ["TextDelta"]
    assert seen[0][0] == "POST /model/us.amazon.nova-micro-v1%3A0/converse-stream HTTP/1.1"


async def _stream_of(body: bytes) -> Message:
    rec = Interaction("POST", RUNTIME + "/model/x/converse-stream", {}, None, 200,
                      {"content-type": "application/vnd.amazon.eventstream"}, body)
    async with adapter(replaying([rec], chunk=17)) as bedrock:
        _, message = await collect(bedrock, ChatRequest((Message.user("x"),)), target("us.amazon.nova-micro-v1:0"))
    return message


async def test_metadata_ends_a_stream_even_without_message_stop() -> None:
    """metadata is ConverseStream's last event: a turn that has it finished, its reason inferred."""
    use = {"toolUseId": "tooluse_1", "name": "get_weather"}
    body = (event("messageStart", {"role": "assistant"})
            + event("contentBlockStart", {"contentBlockIndex": 0, "start": {"toolUse": use}})
            + event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"toolUse": {"input": '{"city":"Oslo"}'}}})
            + event("contentBlockStop", {"contentBlockIndex": 0})
            + event("metadata", {"usage": {"inputTokens": 9, "outputTokens": 4, "totalTokens": 13}}))
    message = await _stream_of(body)
    assert message.finish_reason == "tool_calls" and dict(message.tool_calls[0].arguments) == {"city": "Oslo"}
    body = (event("messageStart", {"role": "assistant"})
            + event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hi"}})
            + event("messageStop", {})
            + event("metadata", {"usage": {"inputTokens": 9, "outputTokens": 1, "totalTokens": 10}}))
    message = await _stream_of(body)
    assert message.text == "Hi" and message.finish_reason == "stop"


async def test_stream_without_message_stop_or_metadata_is_cut() -> None:
    body = (event("messageStart", {"role": "assistant"})
            + event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hi"}}))
    with pytest.raises(ProviderUnavailable, match="stream ended early"):
        await _stream_of(body)
