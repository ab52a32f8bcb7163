"""Responses API failures from a real HTTP server on 127.0.0.1: the typed error a user sees, how
often the retry loop asked, and that a failed turn yields no assistant message."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from ironspire.catalog.models import dynamic_model
from ironspire.catalog.providers import builtin
from ironspire.errors import (
    AuthenticationError,
    BadRequest,
    ContextWindowExceeded,
    ProviderError,
    ProviderUnavailable,
    RateLimitError,
)
from ironspire.messages import Accumulator, Message, Reasoning
from ironspire.protocols.base import ChatRequest, Secrets, Target
from ironspire.protocols.openai_responses import OpenAIResponses
from ironspire.transport import RetryPolicy, Transport
from support.http_stub import Reply, Seen, StubServer

KEY = "sk-loop-0123456789"
REQ = ChatRequest((Message.user("hi"),))
OK = {"id": "resp_1", "object": "response", "status": "completed", "model": "m",
      "output": [{"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
                  "content": [{"type": "output_text", "text": "fine", "annotations": []}]}],
      "usage": {"input_tokens": 5, "output_tokens": 1, "total_tokens": 6}}


def target(base: str, timeout: float = 10.0) -> Target:
    spec = builtin("openai")
    return Target(spec, dynamic_model("openai", "m", reasoning=True), base + "/v1", Secrets({"api_key": KEY}),
                  timeout=timeout, connect_timeout=2.0)


def adapter(attempts: int = 3, max_delay: float = 1.0) -> OpenAIResponses:
    return OpenAIResponses(Transport(RetryPolicy(attempts=attempts, base_delay=0.05, max_delay=max_delay)))


class Script:
    """Answers requests in order (the last answer repeats) and notes when each arrived."""

    def __init__(self, *answers: Reply) -> None:
        self.answers = list(answers)
        self.at: list[float] = []

    def __call__(self, seen: Seen) -> Reply:
        self.at.append(time.monotonic())
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def sse(*events: dict[str, Any]) -> Reply:
    body = "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events)
    return Reply(200, body, {"content-type": "text/event-stream"})


async def streamed(backend: OpenAIResponses, tgt: Target) -> Message:
    acc = Accumulator(tgt.provider.id, tgt.model.id)
    async for event in backend.stream(REQ, tgt):
        acc.add(event)
    return acc.message()


CREATED = {"type": "response.created", "response": {"id": "resp_1", "status": "in_progress", "output": []}}
ADDED = {"type": "response.output_item.added", "output_index": 0,
         "item": {"type": "message", "id": "msg_1", "role": "assistant", "content": []}}
DELTA = {"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "item_id": "msg_1",
         "delta": "Hel"}


async def test_401_is_authentication_error_not_retried_and_key_hidden() -> None:
    script = Script(Reply(401, {"error": {"message": f"Incorrect API key provided: {KEY}",
                                          "type": "invalid_request_error", "code": "invalid_api_key"}}))
    async with StubServer(resolver=script) as s:
        with pytest.raises(AuthenticationError) as info:
            await adapter().complete(REQ, target(s.url))
        assert len(s.seen) == 1 and s.seen[0].path == "/v1/responses"
        assert s.seen[0].headers["authorization"] == f"Bearer {KEY}"
    assert KEY not in str(info.value)


async def test_429_retry_after_is_honoured() -> None:
    script = Script(Reply(429, {"error": {"message": "Rate limit reached", "code": "rate_limit_exceeded"}},
                          {"retry-after": "0.4"}), Reply(200, OK))
    async with StubServer(resolver=script) as s:
        message = await adapter().complete(REQ, target(s.url))
    assert message.text == "fine" and len(script.at) == 2
    assert 0.35 <= script.at[1] - script.at[0] < 3.0


async def test_429_retries_are_bounded_and_the_wait_is_reported() -> None:
    script = Script(Reply(429, {"error": {"message": "slow down", "code": "rate_limit_exceeded"}},
                          {"retry-after": "120"}))
    async with StubServer(resolver=script) as s:
        with pytest.raises(RateLimitError) as info:
            await adapter(attempts=3, max_delay=0.2).complete(REQ, target(s.url))
    assert info.value.retry_after == 120.0 and len(script.at) == 3


async def test_500_then_success_is_retried() -> None:
    script = Script(Reply(500, {"error": {"message": "The server had an error", "type": "server_error"}}),
                    Reply(200, OK))
    async with StubServer(resolver=script) as s:
        message = await adapter().complete(REQ, target(s.url))
    assert message.text == "fine" and message.usage is not None and message.usage.input == 5
    assert len(script.at) == 2


async def test_persistent_500_is_provider_unavailable() -> None:
    script = Script(Reply(500, {"error": {"message": "The server had an error", "type": "server_error"}}))
    async with StubServer(resolver=script) as s:
        with pytest.raises(ProviderUnavailable):
            await adapter(attempts=2).complete(REQ, target(s.url))
    assert len(script.at) == 2


async def test_stream_cut_before_response_completed() -> None:
    async with StubServer(resolver=Script(sse(CREATED, ADDED, DELTA))) as s:
        with pytest.raises(ProviderUnavailable, match=r"before response\.completed"):
            await streamed(adapter(), target(s.url))


@pytest.mark.parametrize(("event", "kind"), [
    ({"type": "error", "code": "rate_limit_exceeded", "message": "Rate limit reached", "param": None},
     RateLimitError),
    ({"type": "error", "code": "context_length_exceeded", "message": "Your input exceeds the context window",
      "param": None}, ContextWindowExceeded),
    ({"type": "error", "code": "server_error", "message": "overloaded", "param": None}, ProviderUnavailable),
    ({"type": "response.failed", "response": {"id": "resp_1", "status": "failed", "output": [],
                                              "error": {"code": "server_error", "message": "The model failed"}}},
     ProviderUnavailable),
    ({"type": "response.failed", "response": {"id": "resp_1", "status": "failed", "output": [],
                                              "error": {"code": "rate_limit_exceeded", "message": "slow"}}},
     RateLimitError),
])
async def test_error_inside_a_200_stream_is_typed(event: dict[str, Any], kind: type[ProviderError]) -> None:
    async with StubServer(resolver=Script(sse(CREATED, ADDED, DELTA, event))) as s:
        with pytest.raises(kind) as info:
            await streamed(adapter(), target(s.url))
    assert type(info.value) is kind


async def test_server_that_never_answers_is_bounded_by_the_timeout() -> None:
    async with StubServer(resolver=Script(Reply(hang=True))) as s:
        started = time.monotonic()
        with pytest.raises(ProviderUnavailable, match="timed out"):
            await adapter(attempts=1).complete(REQ, target(s.url, timeout=0.5))
    assert time.monotonic() - started < 3.0


async def test_complete_stream_is_a_turn() -> None:
    done = {"type": "response.output_item.done", "output_index": 0,
            "item": {**ADDED["item"], "content": [{"type": "output_text", "text": "Hello"}]}}  # type: ignore[dict-item]
    more = {**DELTA, "delta": "lo"}
    completed = {"type": "response.completed", "response": {**OK, "output": [done["item"]]}}
    async with StubServer(resolver=Script(sse(CREATED, ADDED, DELTA, more, done, completed))) as s:
        message = await streamed(adapter(), target(s.url))
        sent = json.loads(s.seen[0].body)
    assert message.text == "Hello" and message.finish_reason == "stop"
    assert sent["stream"] is True and sent["store"] is False and sent["include"] == ["reasoning.encrypted_content"]


async def test_a_server_without_the_endpoint_says_to_use_chat() -> None:
    async with StubServer(resolver=Script(Reply(404, {"detail": "Not Found"}))) as s:
        with pytest.raises(BadRequest) as info:
            await adapter().complete(REQ, target(s.url))
    assert info.value.status == 404 and "/v1/responses is not served" in str(info.value)
    assert "api chat" in (info.value.hint or "")
    remedy = info.value.remedy
    assert remedy is not None and (remedy.action, dict(remedy.args)) == (
        "set_setting", {"provider": "openai", "name": "api", "value": "chat"})


async def test_done_events_stand_in_for_missing_deltas() -> None:
    """A server may send only the .done events (the protocol allows it): the turn is the same."""
    call = {"type": "function_call", "id": "fc_1", "call_id": "call_9", "name": "get_weather", "arguments": ""}
    events = [
        CREATED, ADDED,
        {"type": "response.output_text.done", "output_index": 0, "content_index": 0, "text": "Let me check. "},
        {"type": "response.output_text.done", "output_index": 0, "content_index": 1, "text": "One moment."},
        {"type": "response.output_item.done", "output_index": 0, "item": {
            **ADDED["item"], "content": [{"type": "output_text", "text": "Let me check. "},  # type: ignore[dict-item]
                                         {"type": "output_text", "text": "One moment."}]}},
        {"type": "response.output_item.added", "output_index": 1, "item": call},
        {"type": "response.function_call_arguments.done", "output_index": 1, "arguments": '{"city":"Oslo"}'},
        {"type": "response.output_item.done", "output_index": 1, "item": {**call, "arguments": '{"city":"Oslo"}'}},
        {"type": "response.completed", "response": {"id": "resp_1", "status": "completed", "output": []}},
    ]
    async with StubServer(resolver=Script(sse(*events))) as s:
        message = await streamed(adapter(), target(s.url))
    assert message.text == "Let me check. One moment."
    assert [(c.id, c.name, dict(c.arguments)) for c in message.tool_calls] == [("call_9", "get_weather",
                                                                                 {"city": "Oslo"})]
    assert message.finish_reason == "tool_calls" and message.usage is None


async def test_incomplete_for_the_content_filter() -> None:
    body = {**OK, "status": "incomplete", "incomplete_details": {"reason": "content_filter"}}
    async with StubServer(resolver=Script(Reply(200, body))) as s:
        message = await adapter().complete(REQ, target(s.url))
    assert message.finish_reason == "content_filter" and message.text == "fine"


async def test_events_named_by_item_id_alone() -> None:
    """A server that leaves out ``output_index`` (the item id says which item): reasoning, then two
    parallel calls, each its own part; the reasoning keeps its id and encrypted content."""
    reasoning = {"type": "reasoning", "id": "rs_7", "summary": []}
    calls = [{"type": "function_call", "id": f"fc_{n}", "call_id": f"call_{n}", "name": "get_weather",
              "arguments": ""} for n in (1, 2)]
    events: list[dict[str, Any]] = [
        CREATED,
        {"type": "response.output_item.added", "item": reasoning},
        {"type": "response.reasoning_summary_text.delta", "item_id": "rs_7", "summary_index": 0, "delta": "Think"},
        {"type": "response.output_item.done", "item": {**reasoning, "encrypted_content": "gAAAA-7",
                                                       "summary": [{"type": "summary_text", "text": "Think"}]}},
    ]
    for call, city in zip(calls, ("Oslo", "Rome"), strict=True):
        events += [
            {"type": "response.output_item.added", "item": call},
            {"type": "response.function_call_arguments.delta", "item_id": call["id"], "delta": '{"city":'},
            {"type": "response.function_call_arguments.delta", "item_id": call["id"], "delta": f'"{city}"}}'},
            {"type": "response.output_item.done", "item": {**call, "arguments": f'{{"city":"{city}"}}'}},
        ]
    events.append({"type": "response.completed", "response": {"id": "resp_1", "status": "completed", "output": []}})
    async with StubServer(resolver=Script(sse(*events))) as s:
        turn = await streamed(adapter(), target(s.url))
    first = turn.parts[0]
    assert isinstance(first, Reasoning) and first.text == "Think"
    assert json.loads(first.signature or "") == {"type": "reasoning", "id": "rs_7", "encrypted_content": "gAAAA-7",
                                                 "summary": [{"type": "summary_text", "text": "Think"}]}
    assert [(c.id, dict(c.arguments)) for c in turn.tool_calls] == [("call_1", {"city": "Oslo"}),
                                                                   ("call_2", {"city": "Rome"})]
    assert len(turn.parts) == 3 and turn.finish_reason == "tool_calls"
