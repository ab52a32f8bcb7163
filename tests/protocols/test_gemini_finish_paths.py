"""Every way a Gemini answer can end: each finishReason and each prompt blockReason, whole and
streamed, through the real transport and decoder; the 429 RetryInfo delay honoured by the
transport's retry; and a history that opens with the model.

The finishReason and blockReason values are those of the API's enums (python-genai types.py
FinishReason / BlockedReason; PROTOCOLS.md 0.3 and 6.3).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import pytest

from ironspire.catalog.models import ModelSpec
from ironspire.catalog.providers import builtin
from ironspire.errors import ProviderUnavailable, RateLimitError
from ironspire.messages import Accumulator, Finish, Message, Text, ToolCall, ToolResult, Usage
from ironspire.protocols.base import ChatRequest, Secrets, Target
from ironspire.protocols.gemini import LEADING_USER_TEXT, Gemini
from ironspire.transport import RetryPolicy, Transport
from support.replay import ReplayTransport

BASE = "https://generativelanguage.googleapis.com/v1beta"

FINISH = {
    "STOP": "stop", "MAX_TOKENS": "length",
    "SAFETY": "content_filter", "RECITATION": "content_filter", "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter", "SPII": "content_filter", "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter", "IMAGE_RECITATION": "content_filter",
    "MALFORMED_FUNCTION_CALL": "error", "UNEXPECTED_TOOL_CALL": "error", "TOO_MANY_TOOL_CALLS": "error",
    "MISSING_THOUGHT_SIGNATURE": "error",
    "LANGUAGE": "other", "OTHER": "other", "IMAGE_OTHER": "other", "NO_IMAGE": "other",
    "FINISH_REASON_UNSPECIFIED": "other",
}
BLOCK = ("SAFETY", "OTHER", "BLOCKLIST", "PROHIBITED_CONTENT", "IMAGE_SAFETY", "MODEL_ARMOR", "JAILBREAK")


def target(model: str = "gemini-2.5-flash", base_url: str = BASE) -> Target:
    spec = ModelSpec("google", model, model, 1_048_576, 65_536, vision=True)
    return Target(builtin("google"), spec, base_url, Secrets({"api_key": "k-test"}))


@asynccontextmanager
async def gemini(reply: Callable[[httpx2.Request], httpx2.Response],
                 policy: RetryPolicy | None = None) -> AsyncIterator[Gemini]:
    async with ReplayTransport(reply, retry=policy or RetryPolicy(attempts=1)) as transport:
        yield Gemini(transport)


def sse(*chunks: dict[str, Any]) -> bytes:
    return b"".join(b"data: " + json.dumps(c).encode() + b"\r\n\r\n" for c in chunks)


async def both(chunks: list[dict[str, Any]]) -> tuple[Message, Message, Finish]:
    """The same answer decoded whole (generateContent) and streamed (alt=sse)."""
    whole = {**chunks[0]}
    parts = [p for c in chunks for cand in c.get("candidates", [])[:1] for p in (cand.get("content") or {})
             .get("parts", [])]
    if whole.get("candidates"):
        last = chunks[-1]["candidates"][0]
        whole["candidates"] = [{**last, "content": {"role": "model", "parts": parts}}]
    for key in ("usageMetadata", "promptFeedback"):
        if key in chunks[-1]:
            whole[key] = chunks[-1][key]

    def reply(request: httpx2.Request) -> httpx2.Response:
        if request.url.params.get("alt") == "sse":
            return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=sse(*chunks))
        return httpx2.Response(200, json=whole)

    request = ChatRequest((Message.user("hi"),))
    async with gemini(reply) as g:
        complete = await g.complete(request, target())
        events = [e async for e in g.stream(request, target())]
    streamed = Accumulator("google", "gemini-2.5-flash").feed(events).message()
    assert isinstance(events[-1], Finish)
    return complete, streamed, events[-1]


@pytest.mark.parametrize(("raw", "reason"), sorted(FINISH.items()))
async def test_every_finish_reason_whole_and_streamed(raw: str, reason: str) -> None:
    chunks = [
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "par"}]}}]},
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "tial"}]}, "finishReason": raw}],
         "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 2}},
    ]
    complete, streamed, finish = await both(chunks)
    assert (finish.reason, finish.raw) == (reason, raw)
    for message in (complete, streamed):
        assert message.finish_reason == reason
        assert message.text == "partial" and message.usage == Usage(input=5, output=2)


@pytest.mark.parametrize("raw", ["SAFETY", "PROHIBITED_CONTENT"])
async def test_candidate_stopped_by_safety_with_no_content(raw: str) -> None:
    chunks = [{"candidates": [{"finishReason": raw, "index": 0, "safetyRatings": [
        {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}]}],
        "usageMetadata": {"promptTokenCount": 9}}]
    complete, streamed, _ = await both(chunks)
    for message in (complete, streamed):
        assert message.finish_reason == "content_filter" and message.parts == ()


@pytest.mark.parametrize("block", BLOCK)
async def test_every_prompt_block_reason_is_content_filter(block: str) -> None:
    chunks = [{"promptFeedback": {"blockReason": block, "safetyRatings": []},
               "usageMetadata": {"promptTokenCount": 7, "totalTokenCount": 7}}]
    complete, streamed, finish = await both(chunks)
    assert finish.raw == block
    for message in (complete, streamed):
        assert message.finish_reason == "content_filter" and message.parts == ()
        assert message.usage == Usage(input=7)


async def test_function_calls_with_stop_are_tool_calls_but_max_tokens_stays_length() -> None:
    call = {"functionCall": {"name": "get_capital", "args": {"country": "France"}}}
    stop = [{"candidates": [{"content": {"role": "model", "parts": [call]}, "finishReason": "STOP"}]}]
    for message in (await both(stop))[:2]:
        assert message.finish_reason == "tool_calls" and message.tool_calls[0].name == "get_capital"
    cut = [{"candidates": [{"content": {"role": "model", "parts": [call]}, "finishReason": "MAX_TOKENS"}]}]
    for message in (await both(cut))[:2]:
        assert message.finish_reason == "length"


async def test_stream_without_a_finish_or_block_is_cut() -> None:
    body = sse({"candidates": [{"content": {"role": "model", "parts": [{"text": "par"}]}}]})
    async with gemini(lambda r: httpx2.Response(200, headers={"content-type": "text/event-stream"},
                                               content=body)) as g:
        with pytest.raises(ProviderUnavailable, match="ended early"):
            [e async for e in g.stream(ChatRequest((Message.user("hi"),)), target())]


# --- 429 with RetryInfo ---------------------------------------------------------------------------


def quota(delay: str) -> httpx2.Response:
    return httpx2.Response(429, json={"error": {
        "code": 429, "message": "You exceeded your current quota.", "status": "RESOURCE_EXHAUSTED",
        "details": [{"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
                    {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}]}})


async def test_retry_waits_the_retry_info_delay_then_succeeds() -> None:
    sent: list[float] = []
    ok = httpx2.Response(200, json={"candidates": [{"content": {"role": "model", "parts": [{"text": "ok"}]},
                                                   "finishReason": "STOP"}]})

    def reply(request: httpx2.Request) -> httpx2.Response:
        sent.append(time.perf_counter())
        return quota("0.4s") if len(sent) == 1 else ok

    # no backoff of its own: any wait comes from the RetryInfo
    async with gemini(reply, RetryPolicy(attempts=2, base_delay=0.0)) as g:
        message = await g.complete(ChatRequest((Message.user("hi"),)), target())
    assert message.text == "ok" and len(sent) == 2
    assert sent[1] - sent[0] >= 0.4


async def test_retry_info_longer_than_the_cap_is_capped_and_reported() -> None:
    sent: list[float] = []

    def reply(request: httpx2.Request) -> httpx2.Response:
        sent.append(time.perf_counter())
        return quota("41s")

    async with gemini(reply, RetryPolicy(attempts=2, base_delay=0.0, max_delay=0.2)) as g:
        with pytest.raises(RateLimitError) as info:
            await g.complete(ChatRequest((Message.user("hi"),)), target())
    assert info.value.retry_after == 41.0 and len(sent) == 2
    assert 0.2 <= sent[1] - sent[0] < 5


# --- a history that opens with the model -------------------------------------------------------


def test_history_opening_with_a_function_call_gets_a_user_turn_first() -> None:
    call = ToolCall("c1", "get_capital", {"country": "France"}, provider="openai", model="gpt-5")
    history = (Message("assistant", (call,)), Message.tool(ToolResult("c1", "get_capital", (Text("Paris"),))),
               Message.user("And Italy?"))
    body = Gemini(Transport()).encode(ChatRequest(history), target("gemini-3-pro-preview"), stream=False).json
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user", "user"]
    assert body["contents"][0] == {"role": "user", "parts": [{"text": LEADING_USER_TEXT}]}
    assert "functionCall" in body["contents"][1]["parts"][0]


def test_history_opening_with_the_user_is_unchanged() -> None:
    body = Gemini(Transport()).encode(ChatRequest((Message.user("hi"),)), target(), stream=False).json
    assert body["contents"] == [{"role": "user", "parts": [{"text": "hi"}]}]



# --- the JSON-array stream's own end marker ------------------------------------------------------


def _array(*chunks: dict[str, Any], closed: bool = True) -> bytes:
    body = "[" + ",\r\n".join(json.dumps(c) for c in chunks)
    return (body + "]").encode() if closed else body.encode()


async def _array_stream(body: bytes) -> list[Any]:
    async with gemini(lambda r: httpx2.Response(200, headers={"content-type": "application/json"},
                                               content=body)) as g:
        return [e async for e in g.stream(ChatRequest((Message.user("hi"),)), target())]


async def test_closed_json_array_without_a_finish_reason_is_a_finished_answer() -> None:
    """Without alt=sse the closing ``]`` ends the stream: the reason is inferred, the turn kept."""
    call = {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}
    events = await _array_stream(_array({"candidates": [{"content": {"role": "model", "parts": [call]}}]}))
    assert isinstance(events[-1], Finish) and events[-1].reason == "tool_calls"
    events = await _array_stream(_array({"candidates": [{"content": {"role": "model", "parts": [{"text": "hi"}]}}]}))
    assert isinstance(events[-1], Finish) and events[-1].reason == "stop"


async def test_json_array_cut_before_its_end_is_provider_unavailable() -> None:
    body = _array({"candidates": [{"content": {"role": "model", "parts": [{"text": "hi"}]}}]}, closed=False)
    with pytest.raises(ProviderUnavailable, match="ended early"):
        await _array_stream(body)
