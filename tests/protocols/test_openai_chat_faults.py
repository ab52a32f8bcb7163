"""Failures from a real HTTP server on 127.0.0.1: what a user sees when the endpoint misbehaves.

The server runs in a thread and plays a script of answers, one per request, so each test can
check both the typed error and how many attempts the retry loop made.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from ironspire.catalog.models import dynamic_model
from ironspire.catalog.providers import CustomEndpoint, builtin
from ironspire.errors import (
    AuthenticationError,
    BadRequest,
    ProviderError,
    ProviderUnavailable,
    RateLimitError,
)
from ironspire.messages import Accumulator, Message, StreamEvent
from ironspire.protocols.base import ChatRequest, Secrets, Target
from ironspire.protocols.openai_chat import OpenAIChat
from ironspire.transport import RetryPolicy, Transport

Answer = Callable[[BaseHTTPRequestHandler], None]

OK_BODY = {
    "id": "c1", "object": "chat.completion", "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "fine"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
}


def reply(status: int, body: Any, headers: dict[str, str] | None = None) -> Answer:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()

    def answer(h: BaseHTTPRequestHandler) -> None:
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(raw)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(raw)

    return answer


def sse(events: list[str], *, declared_length: int | None = None) -> Answer:
    """An SSE answer; ``declared_length`` larger than what is sent simulates a connection cut mid-body."""
    raw = "".join(f"data: {e}\n\n" for e in events).encode()

    def answer(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        if declared_length is not None:
            h.send_header("Content-Length", str(declared_length))
        h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.write(raw)
        h.wfile.flush()
        h.close_connection = True

    return answer


class Script:
    def __init__(self) -> None:
        self.answers: list[Answer] = []
        self.requests: list[tuple[float, dict[str, str], Any]] = []
        self.release = threading.Event()


@pytest.fixture
def server() -> Iterator[tuple[str, Script]]:
    script = Script()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"null")
            script.requests.append((time.monotonic(), dict(self.headers), body))
            answer = script.answers.pop(0) if len(script.answers) > 1 else script.answers[0]
            answer(self)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", script
    finally:
        script.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def target(base: str, provider: str = "openai", timeout: float = 10.0) -> Target:
    spec = CustomEndpoint("Loop", base, "m").spec() if provider == "custom" else builtin(provider)
    return Target(spec, dynamic_model(spec.id, "m"), base, Secrets({"api_key": "sk-loop-0123456789"}),
                  timeout=timeout, connect_timeout=2.0)


def adapter(attempts: int = 3, max_delay: float = 1.0) -> OpenAIChat:
    return OpenAIChat(Transport(RetryPolicy(attempts=attempts, base_delay=0.05, max_delay=max_delay)))


REQ = ChatRequest((Message.user("hi"),))


async def collect(backend: OpenAIChat, tgt: Target) -> Message:
    acc = Accumulator(tgt.provider.id, tgt.model.id)
    events: list[StreamEvent] = []
    async for event in backend.stream(REQ, tgt):
        events.append(event)
        acc.add(event)
    return acc.message()


async def test_401_is_authentication_error_and_not_retried(server: tuple[str, Script]) -> None:
    base, script = server
    script.answers = [reply(401, {"error": {"message": "Incorrect API key provided: sk-loop-0123456789",
                                            "type": "invalid_request_error", "code": "invalid_api_key"}})]
    with pytest.raises(AuthenticationError) as info:
        await adapter().complete(REQ, target(base))
    assert len(script.requests) == 1
    assert "sk-loop-0123456789" not in str(info.value)  # the key never shows in an error
    assert script.requests[0][1]["Authorization"] == "Bearer sk-loop-0123456789"


async def test_429_retry_after_is_honoured(server: tuple[str, Script]) -> None:
    base, script = server
    script.answers = [reply(429, {"error": {"message": "Rate limit reached", "code": "rate_limit_exceeded"}},
                            {"retry-after": "0.4"}), reply(200, OK_BODY)]
    started = time.monotonic()
    message = await adapter().complete(REQ, target(base))
    assert message.text == "fine"
    assert len(script.requests) == 2
    gap = script.requests[1][0] - script.requests[0][0]
    assert 0.35 <= gap < 3.0
    assert time.monotonic() - started < 5.0


async def test_429_retries_are_bounded(server: tuple[str, Script]) -> None:
    base, script = server
    script.answers = [reply(429, {"error": {"message": "slow down", "code": "rate_limit_exceeded"}},
                            {"retry-after": "120"})]
    started = time.monotonic()
    with pytest.raises(RateLimitError) as info:
        await adapter(attempts=3, max_delay=0.2).complete(REQ, target(base))
    assert info.value.retry_after == 120.0  # told to the user, but the wait itself is capped
    assert len(script.requests) == 3
    assert time.monotonic() - started < 3.0


async def test_insufficient_quota_is_not_retried(server: tuple[str, Script]) -> None:
    base, script = server
    script.answers = [reply(429, {"error": {"message": "You exceeded your current quota, please check your plan.",
                                            "type": "insufficient_quota", "code": "insufficient_quota"}})]
    with pytest.raises(RateLimitError):
        await adapter().complete(REQ, target(base))
    assert len(script.requests) == 1


async def test_500_then_success_is_retried(server: tuple[str, Script]) -> None:
    base, script = server
    script.answers = [reply(500, {"error": {"message": "The server had an error", "type": "server_error"}}),
                      reply(200, OK_BODY)]
    message = await adapter().complete(REQ, target(base))
    assert message.text == "fine" and message.usage is not None and message.usage.input == 5
    assert len(script.requests) == 2


async def test_persistent_503_is_provider_unavailable(server: tuple[str, Script]) -> None:
    base, script = server
    script.answers = [reply(503, b"<html>Service Unavailable</html>")]
    with pytest.raises(ProviderUnavailable):
        await adapter(attempts=2).complete(REQ, target(base))
    assert len(script.requests) == 2


async def test_malformed_json_is_provider_unavailable(server: tuple[str, Script]) -> None:
    base, script = server
    script.answers = [reply(200, b'{"id": "c1", "choices": [{"index": 0, "message": ')]
    with pytest.raises(ProviderUnavailable, match="malformed"):
        await adapter().complete(REQ, target(base))


def _chunk(delta: dict[str, Any], finish: str | None = None) -> str:
    return json.dumps({"id": "s1", "object": "chat.completion.chunk",
                       "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})


PARTIAL = [_chunk({"role": "assistant", "content": ""}), _chunk({"content": "Hel"}), _chunk({"content": "lo"})]


async def test_stream_closed_before_finishing_is_not_a_success(server: tuple[str, Script]) -> None:
    base, script = server
    script.answers = [sse(PARTIAL)]  # clean close, but no finish_reason and no [DONE]
    with pytest.raises(ProviderUnavailable, match="stream ended early"):
        await collect(adapter(), target(base, "custom"))


async def test_stream_cut_mid_body_is_provider_unavailable(server: tuple[str, Script]) -> None:
    base, script = server
    script.answers = [sse(PARTIAL, declared_length=100_000)]
    with pytest.raises(ProviderUnavailable):
        await collect(adapter(), target(base, "custom"))


async def test_complete_stream_with_usage(server: tuple[str, Script]) -> None:
    base, script = server
    usage = json.dumps({"id": "s1", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}})
    script.answers = [sse([*PARTIAL, _chunk({}, "stop"), usage, "[DONE]"])]
    message = await collect(adapter(), target(base, "custom"))
    assert message.text == "Hello" and message.finish_reason == "stop"
    assert message.usage is not None and (message.usage.input, message.usage.output) == (3, 2)
    sent = script.requests[0][2]
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}


def _call_chunk(index: int, call_id: str | None, name: str | None, args: str) -> str:
    fn: dict[str, Any] = {"arguments": args}
    if name:
        fn["name"] = name
    tc: dict[str, Any] = {"index": index, "type": "function", "function": fn}
    if call_id:
        tc["id"] = call_id
    return _chunk({"tool_calls": [tc]})


async def test_done_without_a_finish_reason_ends_a_tool_call_turn_normally(server: tuple[str, Script]) -> None:
    """OpenRouter relaying Kimi K2: a whole tool call, usage, [DONE], and never a finish_reason."""
    base, script = server
    usage = json.dumps({"id": "s1", "choices": [], "usage": {"prompt_tokens": 40, "completion_tokens": 12}})
    script.answers = [sse([
        _chunk({"role": "assistant", "content": ""}),
        _call_chunk(0, "functions.get_weather:0", "get_weather", ""),
        _call_chunk(0, None, None, '{"city": '), _call_chunk(0, None, None, '"Paris"}'),
        usage, "[DONE]",
    ])]
    message = await collect(adapter(), target(base, "custom"))
    (call,) = message.tool_calls
    assert (call.id, call.name, dict(call.arguments)) == ("functions.get_weather:0", "get_weather", {"city": "Paris"})
    assert message.finish_reason == "tool_calls"
    assert message.usage is not None and (message.usage.input, message.usage.output) == (40, 12)


async def test_done_without_a_finish_reason_ends_a_text_turn_with_stop(server: tuple[str, Script]) -> None:
    base, script = server
    script.answers = [sse([*PARTIAL, "[DONE]"])]
    message = await collect(adapter(), target(base, "custom"))
    assert message.text == "Hello" and message.finish_reason == "stop"


async def test_tool_call_cut_before_done_is_still_provider_unavailable(server: tuple[str, Script]) -> None:
    """The same stream without its end marker: the connection dropped, the turn is not taken."""
    base, script = server
    script.answers = [sse([_call_chunk(0, "c1", "get_weather", '{"city": "Paris"}')])]
    with pytest.raises(ProviderUnavailable, match="stream ended early"):
        await collect(adapter(), target(base, "custom"))


@pytest.mark.parametrize(("payload", "kind"), [
    ({"error": {"message": "Failed to call a function.", "type": "invalid_request_error",
                "code": "tool_use_failed"}}, BadRequest),
    ({"error": {"message": "Rate limit reached", "type": "tokens", "code": "rate_limit_exceeded"}}, RateLimitError),
    ({"error": {"message": "overloaded", "type": "server_error"}}, ProviderUnavailable),
])
async def test_error_inside_a_200_stream_is_typed(server: tuple[str, Script], payload: Any,
                                                  kind: type[ProviderError]) -> None:
    base, script = server
    script.answers = [sse([PARTIAL[0], PARTIAL[1], json.dumps(payload)])]
    with pytest.raises(kind):
        await collect(adapter(), target(base, "groq"))


async def test_server_that_never_answers_is_bounded_by_the_timeout(server: tuple[str, Script]) -> None:
    base, script = server
    script.answers = [lambda h: script.release.wait(30)]
    started = time.monotonic()
    with pytest.raises(ProviderUnavailable, match="timed out"):
        await adapter(attempts=1).complete(REQ, target(base, timeout=0.5))
    assert time.monotonic() - started < 3.0


async def test_refused_connection_is_provider_unavailable() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ProviderUnavailable, match="cannot connect"):
        await adapter(attempts=1).complete(REQ, target(f"http://127.0.0.1:{port}/v1"))
