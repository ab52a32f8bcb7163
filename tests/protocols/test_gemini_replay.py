"""Real Gemini traffic replayed through the real transport and decoder, plus loopback faults.

Every recording under realdata/google is served by httpx2.MockTransport to the real Transport,
so the bytes go through the same path as in production. Where a recording holds the request,
the request we encode from the same neutral conversation is compared with it.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from ironspire.catalog.models import ModelSpec
from ironspire.catalog.providers import builtin
from ironspire.errors import AuthenticationError, ModelNotFound, ProviderUnavailable, RateLimitError
from ironspire.messages import Finish, Image, Message, Reasoning, Text, ToolCall, ToolResult, Usage
from ironspire.protocols.base import ChatRequest, Secrets, Target, Tool
from ironspire.protocols.gemini import Gemini
from ironspire.transport import RetryPolicy, Transport
from support.recordings import Interaction, load
from support.replay import ReplayTransport, Server, collect

BASE = "https://generativelanguage.googleapis.com/v1beta"
KEY = "test-gemini-key-1234"

CAPITAL = Tool("get_capital", "Get the capital of a country.", {
    "type": "object", "properties": {"country": {"type": "string", "description": "The country name."}},
    "required": ["country"]})
TEMPERATURE = Tool("get_temperature", "Get the temperature in a city.", {
    "type": "object", "properties": {"city": {"type": "string", "description": "The city name."}},
    "required": ["city"]})


def target(model: str, *, reasoning: bool = False, base_url: str = BASE) -> Target:
    spec = ModelSpec("google", model, model, 1_048_576, 65_536, vision=True, reasoning=reasoning)
    return Target(builtin("google"), spec, base_url, Secrets({"api_key": KEY}))


def replaying(interactions: Iterable[Interaction], chunk: int | None = None) -> Server:
    """Google's POSTs (image recordings also hold the GET that fetched the picture), passing on
    only the content type."""
    return Server(interactions, chunk, only=lambda i: i.method == "POST", keep=("content-type",),
                  content_type="application/json")


@asynccontextmanager
async def adapter(server: Server, attempts: int = 1) -> AsyncIterator[Gemini]:
    async with ReplayTransport(server, attempts) as transport:
        yield Gemini(transport)


def b64bytes(value: str) -> bytes:
    """Recorders re-encode base64 with the URL-safe alphabet; compare the bytes, not the text."""
    return base64.urlsafe_b64decode(value.replace("+", "-").replace("/", "_") + "=" * (-len(value) % 4))


def normalized(contents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Contents with the parts that legitimately differ between clients made comparable:
    call ids (each client mints its own), the key a tool's text goes under, and base64 alphabets."""
    out = []
    for content in contents:
        parts = []
        for part in content["parts"]:
            p = json.loads(json.dumps(part))
            if "functionCall" in p:
                p["functionCall"].pop("id", None)
            if "functionResponse" in p:
                p["functionResponse"].pop("id", None)
                p["functionResponse"]["response"] = sorted(p["functionResponse"]["response"].values())
            if "thoughtSignature" in p:
                p["thoughtSignature"] = b64bytes(p["thoughtSignature"])
            if "inlineData" in p:
                p["inlineData"]["data"] = b64bytes(p["inlineData"]["data"])
            parts.append(p)
        out.append({"role": content["role"], "parts": parts})
    return out


def assert_paired_ids(contents: list[dict[str, Any]]) -> None:
    calls = [p["functionCall"]["id"] for c in contents for p in c["parts"] if "functionCall" in p]
    results = [p["functionResponse"]["id"] for c in contents for p in c["parts"] if "functionResponse" in p]
    assert calls == results and all(calls)


def recording(realdata: Path, name: str) -> list[Interaction]:
    return load(realdata / "google" / name)


# --- every recording is covered -------------------------------------------------------------

COVERED = {
    "pydantic-ai__test_google__test_google_model.yaml",
    "pydantic-ai__test_google__test_google_model_stream.yaml",
    "pydantic-ai__test_google__test_google_model_iter_stream.yaml",
    "pydantic-ai__test_google__test_google_tool_output.yaml",
    "pydantic-ai__test_google__test_google_model_thinking_part.yaml",
    "pydantic-ai__test_google__test_google_model_thinking_part_iter.yaml",
    "pydantic-ai__test_google__test_google_model_image_url_input.yaml",
    "pydantic-ai__test_model_name_suggestions__test_model_name_suggestion_google_.yaml",
    "mirascope__test_authentication_error__google_gemini_2_5_flash.yaml",
    "crewAI__TestAgentMultimodalGemini.test_video_file_gemini-gemini-2.0-flash_.yaml",
    "llm-gemini__test_gemini__test_prompt.yaml",
}


def test_every_google_recording_is_replayed(realdata: Path) -> None:
    assert {p.name for p in (realdata / "google").iterdir()} == COVERED


# --- text ------------------------------------------------------------------------------------


async def test_plain_generate_content(realdata: Path) -> None:
    recs = recording(realdata, "pydantic-ai__test_google__test_google_model.yaml")
    server = replaying(recs)
    tgt = target("gemini-2.5-flash")
    request = ChatRequest((Message.user("Hello!"),), system="You are a chatbot.")
    async with adapter(server) as gemini:
        message = await gemini.complete(request, tgt)
    assert message.text == "Hello! How can I help you today?"
    assert message.finish_reason == "stop"
    assert message.usage == Usage(input=9, output=9 + 34, reasoning=34)
    assert (message.provider, message.model) == ("google", "gemini-2.5-flash")
    sent = server.sent[0]
    assert str(sent.url) == recs[0].uri
    assert sent.headers["x-goog-api-key"] == KEY
    body = server.body(0)
    assert body["contents"] == recs[0].request_json["contents"]
    assert body["systemInstruction"]["parts"] == recs[0].request_json["systemInstruction"]["parts"]


@pytest.mark.parametrize("chunk", [None, 7])
async def test_sse_stream_with_crlf_events(realdata: Path, chunk: int | None) -> None:
    recs = recording(realdata, "pydantic-ai__test_google__test_google_model_stream.yaml")
    assert b"\r\n\r\n" in recs[0].body  # the recording really uses CRLF framing
    server = replaying(recs, chunk)
    tgt = target("gemini-2.0-flash-exp")
    request = ChatRequest((Message.user("What is the capital of France?"),), system="You are a helpful chatbot.",
                          temperature=0.0)
    async with adapter(server) as gemini:
        events, message = await collect(gemini, request, tgt)
    assert message.text == "The capital of France is Paris.\n"
    # usageMetadata repeats on every chunk; the last one counts.
    assert message.usage == Usage(input=13, output=8)
    assert events[-1] == Finish("stop", "STOP")
    assert str(server.sent[0].url) == recs[0].uri
    body = server.body(0)
    assert body["contents"] == recs[0].request_json["contents"]
    assert body["generationConfig"] == {"temperature": 0.0}


async def test_stream_cut_before_finish_is_an_error(realdata: Path) -> None:
    rec = recording(realdata, "pydantic-ai__test_google__test_google_model_stream.yaml")[0]
    rec.body = rec.body[: rec.body.rindex(b"data:")]  # drop the chunk holding finishReason
    async with adapter(replaying([rec])) as gemini:
        with pytest.raises(ProviderUnavailable, match="stream ended early"):
            await collect(gemini, ChatRequest((Message.user("x"),)), target("gemini-2.0-flash-exp"))


# --- tools -----------------------------------------------------------------------------------


async def test_streamed_function_calls_round_trip(realdata: Path) -> None:
    recs = recording(realdata, "pydantic-ai__test_google__test_google_model_iter_stream.yaml")
    server = replaying(recs)
    tgt = target("gemini-2.0-flash")
    history: list[Message] = [Message.user("What is the temperature of the capital of France?")]
    results = {"get_capital": "Paris", "get_temperature": "30°C"}
    async with adapter(server) as gemini:
        for step in range(3):
            request = ChatRequest(tuple(history), system="You are a helpful chatbot.", tools=(CAPITAL, TEMPERATURE))
            events, message = await collect(gemini, request, tgt)
            body = server.body(step)
            recorded = recs[step].request_json
            assert normalized(body["contents"]) == normalized(recorded["contents"])
            assert_paired_ids(body["contents"])
            declared = body["tools"][0]["functionDeclarations"]
            assert [(d["name"], d["description"]) for d in declared] == [
                (d["name"], d["description"]) for d in recorded["tools"][0]["functionDeclarations"]]
            assert declared[0]["parametersJsonSchema"]["required"] == ["country"]
            history.append(message)
            if step < 2:
                (call,) = message.tool_calls
                assert events[-1] == Finish("tool_calls", "STOP")
                assert message.finish_reason == "tool_calls"
                # Gemini sent no id: one is made up, valid for every provider.
                assert len(call.id) == 9 and call.id.isalnum()
                history.append(Message.tool(ToolResult(call.id, call.name, (Text(results[call.name]),))))
    first, second = history[1].tool_calls[0], history[3].tool_calls[0]
    assert (first.name, dict(first.arguments)) == ("get_capital", {"country": "France"})
    assert (second.name, dict(second.arguments)) == ("get_temperature", {"city": "Paris"})
    assert history[1].usage == Usage(input=52, output=5)
    assert history[-1].text == "The temperature in Paris is 30°C.\n"
    assert history[-1].usage == Usage(input=79, output=12)
    assert history[-1].finish_reason == "stop"


async def test_forced_function_call_round_trip(realdata: Path) -> None:
    recs = recording(realdata, "pydantic-ai__test_google__test_google_tool_output.yaml")
    server = replaying(recs)
    tgt = target("gemini-2.0-flash")
    tools = (Tool("get_user_country"), Tool("final_result", "The final response which ends this conversation", {
        "type": "object", "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
        "required": ["city", "country"]}))
    history: list[Message] = [Message.user("What is the largest city in the user country?")]
    async with adapter(server) as gemini:
        first = await gemini.complete(ChatRequest(tuple(history), tools=tools, tool_choice="required"), tgt)
        (call,) = first.tool_calls
        assert (call.name, dict(call.arguments)) == ("get_user_country", {})
        assert first.finish_reason == "tool_calls"
        assert first.usage == Usage(input=33, output=5)
        history += [first, Message.tool(ToolResult(call.id, call.name, (Text("Mexico"),)))]
        second = await gemini.complete(ChatRequest(tuple(history), tools=tools, tool_choice="required"), tgt)
    (final,) = second.tool_calls
    assert dict(final.arguments) == {"city": "Mexico City", "country": "Mexico"}
    for n in range(2):
        body, recorded = server.body(n), recs[n].request_json
        assert normalized(body["contents"]) == normalized(recorded["contents"])
        assert body["toolConfig"]["functionCallingConfig"]["mode"] == "ANY"
    assert server.body(1)["contents"][2]["parts"][0]["functionResponse"]["response"] == {"result": "Mexico"}


# --- thinking --------------------------------------------------------------------------------


async def test_thought_parts_and_signature_replay_to_gemini_3(realdata: Path) -> None:
    recs = recording(realdata, "pydantic-ai__test_google__test_google_model_thinking_part.yaml")
    server = replaying(recs)
    tgt = target("gemini-3-pro-preview", reasoning=True)
    dummy = (Tool("dummy", "", {"type": "object", "properties": {}, "additionalProperties": False}),)
    question = Message.user("How do I cross the street?")
    async with adapter(server) as gemini:
        first = await gemini.complete(ChatRequest((question,), system="You are a helpful assistant.",
                                                  tools=dummy), tgt)
        thought, text, signed = first.parts
        assert isinstance(thought, Reasoning) and thought.text.startswith("**A Safe Street-Crossing Guide")
        assert thought.signature is None
        assert isinstance(text, Text) and text.text.startswith("Crossing the street safely")
        # The signature rode on the visible text part; it is kept right behind it.
        assert isinstance(signed, Reasoning) and signed.text == "" and signed.signature
        assert signed.signature.startswith("EqoeCqce") and (signed.provider, signed.model) == (
            "google", "gemini-3-pro-preview")
        assert first.usage == Usage(input=29, output=736 + 1001, reasoning=1001)
        follow = Message.user("Considering the way to cross the street, analogously, how do I cross the river?")
        second = await gemini.complete(ChatRequest((question, first, follow), system="You are a helpful assistant.",
                                                   tools=dummy), tgt)
    assert server.body(0)["generationConfig"]["thinkingConfig"] == {"includeThoughts": True}
    assert normalized(server.body(1)["contents"]) == normalized(recs[1].request_json["contents"])
    assert second.reasoning and second.text and second.finish_reason == "stop"


@pytest.mark.parametrize("chunk", [None, 11])
async def test_streamed_thoughts_keep_signature_position(realdata: Path, chunk: int | None) -> None:
    recs = recording(realdata, "pydantic-ai__test_google__test_google_model_thinking_part_iter.yaml")
    server = replaying(recs, chunk)
    tgt = target("gemini-2.5-pro", reasoning=True)
    request = ChatRequest((Message.user("How do I cross the street?"),), system="You are a helpful assistant.",
                          tools=(Tool("dummy"),))
    async with adapter(server) as gemini:
        _, message = await collect(gemini, request, tgt)
    kinds = [type(p).__name__ for p in message.parts]
    assert kinds == ["Reasoning", "Text", "Reasoning", "Text"]
    thoughts, first_text, signed, _ = message.parts
    assert isinstance(thoughts, Reasoning) and thoughts.text.startswith("**Clarifying User Goals**")
    assert "**Crafting Safe Instructions**" in thoughts.text
    assert isinstance(signed, Reasoning) and signed.signature and signed.signature.startswith("CiIB0e2K")
    assert message.text.startswith("This is a great question! Safely crossing the street")
    assert message.text.endswith("Always assume a driver might not see you.")
    assert message.usage == Usage(input=34, output=469 + 787, reasoning=787)
    assert message.finish_reason == "stop"
    assert server.body(0)["contents"] == recs[0].request_json["contents"]
    # Replayed to the same model, the signature goes back on the text part it came with.
    replay = Gemini(Transport()).encode(
        ChatRequest((request.messages[0], message, Message.user("next"))), tgt, stream=True).json
    model_parts = replay["contents"][1]["parts"]
    assert model_parts[0]["thought"] is True and "thoughtSignature" not in model_parts[0]
    assert model_parts[1]["text"] == first_text.text and model_parts[1]["thoughtSignature"] == signed.signature
    assert "thoughtSignature" not in model_parts[2]


@pytest.mark.parametrize("chunk", [None, 5])
async def test_json_array_stream_without_alt_sse(realdata: Path, chunk: int | None) -> None:
    """llm-gemini calls streamGenerateContent without alt=sse and gets one incrementally written
    JSON array; proxies do the same, so that form is decoded too."""
    recs = recording(realdata, "llm-gemini__test_gemini__test_prompt.yaml")
    assert recs[0].body.lstrip().startswith(b"[")
    server = replaying(recs, chunk)
    tgt = target("gemini-flash-latest", reasoning=True)
    async with adapter(server) as gemini:
        events, message = await collect(gemini, ChatRequest((Message.user("Name for a pet pelican, just the name"),)),
                                        tgt)
    thoughts, text, signed = message.parts
    assert isinstance(thoughts, Reasoning) and thoughts.text.startswith("**Considering the Constraint**")
    assert text == Text("Scoop")
    assert isinstance(signed, Reasoning) and signed.signature and signed.signature.startswith("Eq0JCqoJ")
    assert message.usage == Usage(input=11, output=2 + 291, reasoning=291)
    assert events[-1] == Finish("stop", "STOP")
    body = server.body(0)
    assert body["contents"] == recs[0].request_json["contents"]
    assert body["generationConfig"]["thinkingConfig"] == {"includeThoughts": True}
    assert server.sent[0].url.params["alt"] == "sse"  # we ask for SSE ourselves


async def test_json_array_stream_cut_is_an_error(realdata: Path) -> None:
    rec = recording(realdata, "llm-gemini__test_gemini__test_prompt.yaml")[0]
    rec.body = rec.body[: len(rec.body) // 2]
    async with adapter(replaying([rec])) as gemini:
        with pytest.raises(ProviderUnavailable, match="stream ended early"):
            await collect(gemini, ChatRequest((Message.user("x"),)), target("gemini-flash-latest"))


# --- images ----------------------------------------------------------------------------------


async def test_inline_image_input(realdata: Path) -> None:
    recs = recording(realdata, "pydantic-ai__test_google__test_google_model_image_url_input.yaml")
    download = next(i for i in recs if i.method == "GET")
    image = Image("image/jpeg", data=base64.b64encode(download.body).decode())
    server = replaying(recs)
    async with adapter(server) as gemini:
        message = await gemini.complete(
            ChatRequest((Message.user("What is this vegetable?", image),), system="You are a helpful chatbot."),
            target("gemini-2.0-flash"))
    assert message.text == "That is a potato."
    assert message.usage == Usage(input=1817, output=5)
    post = next(i for i in recs if i.method == "POST")
    assert normalized(server.body(0)["contents"]) == normalized(post.request_json["contents"])


# --- errors ----------------------------------------------------------------------------------


async def test_unknown_model_is_model_not_found(realdata: Path) -> None:
    recs = recording(realdata, "pydantic-ai__test_model_name_suggestions__test_model_name_suggestion_google_.yaml")
    server = replaying(recs)
    async with adapter(server) as gemini:
        with pytest.raises(ModelNotFound) as info:
            await gemini.complete(ChatRequest((Message.user("hello"),)), target("gemini-3.6-flahs"))
    assert info.value.status == 404 and info.value.model == "gemini-3.6-flahs"
    assert str(server.sent[0].url) == recs[0].uri
    assert server.body(0)["contents"] == recs[0].request_json["contents"]


async def test_bad_key_400_is_authentication_error(realdata: Path) -> None:
    recs = recording(realdata, "mirascope__test_authentication_error__google_gemini_2_5_flash.yaml")
    server = replaying(recs)
    async with adapter(server, attempts=3) as gemini:
        with pytest.raises(AuthenticationError) as info:
            await gemini.complete(ChatRequest((Message.user("This should fail with AuthenticationError"),)),
                                  target("gemini-2.5-flash"))
    assert info.value.status == 400
    assert "API key not valid" in str(info.value)
    assert KEY not in str(info.value) and KEY not in (info.value.raw or "")
    assert len(server.sent) == 1  # a rejected key is not retried
    assert server.body(0)["contents"] == recs[0].request_json["contents"]


async def test_quota_429_is_rate_limit(realdata: Path) -> None:
    recs = recording(realdata, "crewAI__TestAgentMultimodalGemini.test_video_file_gemini-gemini-2.0-flash_.yaml")
    recorded = recs[0].request_json
    video = recorded["contents"][0]["parts"][1]["inlineData"]
    prompt = recorded["contents"][0]["parts"][0]["text"]
    clip = Image("video/mp4", data=base64.b64encode(b64bytes(video["data"])).decode())
    server = replaying(recs)
    request = ChatRequest((Message.user(prompt, clip),), system=recorded["systemInstruction"]["parts"][0]["text"],
                          stop=("\nObservation:",))
    async with adapter(server) as gemini:
        with pytest.raises(RateLimitError) as info:
            await gemini.complete(request, target("gemini-2.0-flash"))
    assert info.value.status == 429 and "Resource exhausted" in str(info.value)
    assert info.value.retry_after is None  # this body carries no RetryInfo
    body = server.body(0)
    assert normalized(body["contents"]) == normalized(recorded["contents"])
    assert body["generationConfig"]["stopSequences"] == ["\nObservation:"]


# --- loopback faults ---------------------------------------------------------------------------

Responder = Callable[[str, str, bytes], tuple[int, dict[str, str], bytes]]


@asynccontextmanager
async def loopback(responder: Responder) -> AsyncIterator[tuple[str, list[tuple[str, str, bytes]]]]:
    """A tiny HTTP/1.1 server on 127.0.0.1 that answers each request with ``responder``."""
    seen: list[tuple[str, str, bytes]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        length = next((int(v) for k, _, v in (ln.partition(":") for ln in lines[1:])
                       if k.lower() == "content-length"), 0)
        body = await reader.readexactly(length)
        seen.append((method, path, body))
        status, headers, payload = responder(method, path, body)
        out = [f"HTTP/1.1 {status} X", f"content-length: {len(payload)}", "connection: close"]
        out += [f"{k}: {v}" for k, v in headers.items()]
        writer.write(("\r\n".join(out) + "\r\n\r\n").encode() + payload)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/v1beta", seen
    finally:
        server.close()
        await server.wait_closed()


def _json(status: int, body: Any) -> tuple[int, dict[str, str], bytes]:
    return status, {"content-type": "application/json"}, json.dumps(body).encode()


async def test_loopback_bad_key() -> None:
    body = {"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.",
                      "status": "INVALID_ARGUMENT", "details": [
                          {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                           "domain": "googleapis.com"}]}}
    async with loopback(lambda m, p, b: _json(400, body)) as (url, seen):
        transport = Transport(RetryPolicy(attempts=3))
        try:
            with pytest.raises(AuthenticationError):
                await Gemini(transport).complete(ChatRequest((Message.user("hi"),)),
                                                 target("gemini-2.5-flash", base_url=url))
        finally:
            await transport.close()
    assert len(seen) == 1 and seen[0][1] == "/v1beta/models/gemini-2.5-flash:generateContent"


def _quota(delay: str) -> dict[str, Any]:
    return {"error": {"code": 429, "message": "Resource has been exhausted (e.g. check quota).",
                      "status": "RESOURCE_EXHAUSTED", "details": [
                          {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
                          {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}]}}


async def test_loopback_429_retry_info_gives_retry_after() -> None:
    async with loopback(lambda m, p, b: _json(429, _quota("41s"))) as (url, _):
        transport = Transport(RetryPolicy(attempts=1))
        try:
            with pytest.raises(RateLimitError) as info:
                await Gemini(transport).complete(ChatRequest((Message.user("hi"),)),
                                                 target("gemini-2.5-flash", base_url=url))
        finally:
            await transport.close()
    assert info.value.retry_after == 41.0 and info.value.status == 429


async def test_loopback_429_then_success_waits_the_hinted_delay() -> None:
    answers = [_json(429, {"error": {"code": 429, "message": "Too many requests, slow down.",
                                     "status": "RESOURCE_EXHAUSTED", "details": [
                                         {"@type": "type.googleapis.com/google.rpc.RetryInfo",
                                          "retryDelay": "0.05s"}]}}),
               _json(200, {"candidates": [{"content": {"role": "model", "parts": [{"text": "ok"}]},
                                           "finishReason": "STOP"}]})]
    async with loopback(lambda m, p, b: answers.pop(0)) as (url, seen):
        transport = Transport(RetryPolicy(attempts=2))
        try:
            message = await Gemini(transport).complete(ChatRequest((Message.user("hi"),)),
                                                       target("gemini-2.5-flash", base_url=url))
        finally:
            await transport.close()
    assert message.text == "ok" and len(seen) == 2


async def test_loopback_error_inside_sse_stream() -> None:
    sse = (b'data: {"candidates": [{"content": {"role": "model", "parts": [{"text": "par"}]}}]}\r\n\r\n'
           b'data: {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}\r\n\r\n')
    async with loopback(lambda m, p, b: (200, {"content-type": "text/event-stream"}, sse)) as (url, seen):
        transport = Transport(RetryPolicy(attempts=1))
        try:
            with pytest.raises(ProviderUnavailable, match="overloaded"):
                await collect(Gemini(transport), ChatRequest((Message.user("hi"),)),
                              target("gemini-2.5-flash", base_url=url))
        finally:
            await transport.close()
    assert seen[0][1] == "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"


async def test_safety_block_is_content_filter() -> None:
    blocked = {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 7}}
    async with loopback(lambda m, p, b: _json(200, blocked)) as (url, _):
        transport = Transport(RetryPolicy(attempts=1))
        try:
            message = await Gemini(transport).complete(ChatRequest((Message.user("hi"),)),
                                                       target("gemini-2.5-flash", base_url=url))
        finally:
            await transport.close()
    assert message.finish_reason == "content_filter" and message.parts == ()
    assert message.usage == Usage(input=7)


def test_tool_call_ids_differ_within_a_response() -> None:
    body = {"responseId": "r1", "candidates": [{"finishReason": "STOP", "content": {"role": "model", "parts": [
        {"functionCall": {"name": "a", "args": {}}}, {"functionCall": {"name": "a", "args": {}}}]}}]}
    message = Gemini(Transport()).decode(json.dumps(body).encode(), target("gemini-2.5-flash"))
    first, second = message.tool_calls
    assert first.id != second.id and isinstance(first, ToolCall)
    assert message.finish_reason == "tool_calls"
