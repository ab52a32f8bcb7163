"""Real HTTP servers on 127.0.0.1 speaking OpenAI chat, Anthropic Messages and Ollama, for
workspace tests that go through the real adapters and transport.

Each server answers with the text ``"{label}: {n} messages, last: {last user text}"`` so a test
can see what history reached it, and records every request body it received.

Gemini (``/v1beta/models/M:generateContent`` and ``:streamGenerateContent?alt=sse``) answers
the same way. Failures: ``status`` fails every request with that HTTP status; ``statuses`` (a
function of the request's index, from 0) picks each request's status, so a test can script a
provider that flips between 429 and 200; ``error_code`` goes into the error body's ``code``
(``insufficient_quota`` makes a 429 a spent quota) and ``retry_after`` into its header.

``mode="cut"`` (OpenAI format, streamed) sends the reply's text and then an in-band 503 error,
as a provider failing mid-stream does.

``mode="tools"`` (OpenAI format) answers a request that offers tools and ends on a user turn
with a call of the first tool (id ``TOOL_CALL_ID``); once the history ends on the tool's result
it answers in text naming that result. ``status`` answers every POST with that
HTTP error (401 a rejected key, 429 a rate limit with ``retry-after: 30``, or ``retry_after``)
and ``probe_status`` every GET (the health probes), so health checks see each state.
``hold_after=N`` sends N stream chunks and then waits for
``gate`` to be set, so a test can observe a client in the middle of a stream. In ``"endless"``
mode ``mid_stream`` is set while the server holds a stream open without its terminator, and
``client_gone`` once the client's side of that connection has closed.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            content = m.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return "".join(c.get("text", "") for c in content if isinstance(c, dict))
    return ""


#: a Kimi-style id (dots and a colon) that Anthropic and Mistral would refuse as sent
TOOL_CALL_ID = "functions.get_weather:0"
TOOL_ARGUMENTS = {"city": "Oslo"}


def _tool_result_text(messages: list[dict[str, Any]]) -> str | None:
    """The content of a trailing tool message (OpenAI format), if the history ends on one."""
    if messages and messages[-1].get("role") == "tool":
        content = messages[-1].get("content")
        return content if isinstance(content, str) else json.dumps(content)
    return None


class Server:
    def __init__(self, label: str, mode: str = "ok", *, status: int = 200, drip: float = 0.0,
                 hold_after: int | None = None, probe_status: int = 200,
                 statuses: Callable[[int], int] | None = None, error_code: str | None = None,
                 retry_after: str = "30") -> None:
        self.label, self.mode, self.status, self.drip = label, mode, status, drip
        self.probe_status = probe_status
        self.hold_after = hold_after
        self.statuses, self.error_code, self.retry_after = statuses, error_code, retry_after
        self.count_lock = threading.Lock()
        #: (request index, status answered) of every POST, in arrival order
        self.answered: list[tuple[int, int]] = []
        self.requests: list[dict[str, Any]] = []
        #: the path of every GET (health probes, model listings), in arrival order
        self.probes: list[str] = []
        self.release = threading.Event()
        self.gate = threading.Event()
        self.mid_stream = threading.Event()
        self.client_gone = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # health probes (and model listings)
                outer.probes.append(self.path)
                if outer.probe_status != 200:
                    self._error(outer.probe_status)
                    return
                self._json(200, {"data": [], "models": [], "version": "0.0.0"})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                with outer.count_lock:
                    index = len(outer.requests)
                    outer.requests.append({"path": self.path, "body": body, "headers": dict(self.headers)})
                    status = outer.statuses(index) if outer.statuses is not None else outer.status
                    outer.answered.append((index, status))
                if outer.mode == "hang":
                    outer.release.wait(20)
                    return
                if status != 200:
                    self._error(status)
                    return
                path = self.path.split("?")[0]
                if ":generateContent" in path or ":streamGenerateContent" in path:
                    self._gemini(body, ":streamGenerateContent" in path)
                    return
                messages = body.get("messages", [])
                text = f"{outer.label}: {len(messages)} messages, last: {_last_user_text(messages)}"
                result = _tool_result_text(messages)
                if outer.mode == "tools" and result is not None:
                    text = f"{outer.label}: {len(messages)} messages, tool said: {result}"
                if self.path.endswith("/chat/completions"):
                    if outer.mode == "tools" and body.get("tools") and result is None:
                        self._openai_tool_call(body)
                        return
                    self._openai(body, text)
                elif self.path.endswith("/v1/messages"):
                    self._anthropic(body, text)
                elif self.path.endswith("/api/chat"):
                    self._ollama(body, text)
                else:
                    self._json(404, {"error": {"message": f"no route {self.path}"}})

            def _error(self, status: int) -> None:
                """What providers answer: 401 bad key, 429 throttled (with retry-after), else a failure;
                ``error_code`` (when given) is the body's type and code."""
                message = {401: "Incorrect API key provided.", 429: "Rate limit reached; slow down."}.get(
                    status, "server exploded")
                kind = outer.error_code or {401: "invalid_request_error", 429: "rate_limit_error"}.get(
                    status, "server_error")
                error: dict[str, Any] = {"message": message, "type": kind}
                if outer.error_code:
                    error["code"] = outer.error_code
                self._json(status, {"error": error}, {"retry-after": outer.retry_after} if status == 429 else None)

            def _json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
                raw = json.dumps(data).encode()
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _stream(self, content_type: str, chunks: list[bytes]) -> None:
                self.send_response(200)
                self.send_header("content-type", content_type)
                self.end_headers()
                for i, chunk in enumerate(chunks):
                    if outer.hold_after is not None and i == outer.hold_after:
                        outer.gate.wait(20)
                    self.wfile.write(chunk)
                    self.wfile.flush()
                    if outer.drip:
                        time.sleep(outer.drip)
                if outer.mode == "endless":
                    outer.mid_stream.set()
                    try:
                        while not outer.release.wait(0.05):
                            if self._peer_closed():
                                outer.client_gone.set()
                                return
                    finally:
                        outer.mid_stream.clear()

            def _peer_closed(self) -> bool:
                readable, _, _ = select.select([self.connection], [], [], 0)
                if not readable:
                    return False
                try:
                    return self.connection.recv(1, socket.MSG_PEEK) == b""
                except OSError:
                    return True

            def _openai_tool_call(self, body: dict[str, Any]) -> None:
                name = body["tools"][0]["function"]["name"]
                usage = {"prompt_tokens": 80, "completion_tokens": 12, "total_tokens": 92}
                call = {"id": TOOL_CALL_ID, "type": "function",
                        "function": {"name": name, "arguments": json.dumps(TOOL_ARGUMENTS)}}
                if not body.get("stream"):
                    self._json(200, {"id": "c2", "object": "chat.completion", "model": body.get("model"),
                                     "choices": [{"index": 0, "message": {"role": "assistant", "content": None,
                                                                          "tool_calls": [call]},
                                                  "finish_reason": "tool_calls"}], "usage": usage})
                    return
                arguments = call["function"]["arguments"]
                events: list[dict[str, Any]] = [
                    {"id": "c2", "choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [
                        {"index": 0, "id": TOOL_CALL_ID, "type": "function",
                         "function": {"name": name, "arguments": ""}}]}}]},
                    {"id": "c2", "choices": [{"index": 0, "delta": {"tool_calls": [
                        {"index": 0, "function": {"arguments": arguments[:6]}}]}}]},
                    {"id": "c2", "choices": [{"index": 0, "delta": {"tool_calls": [
                        {"index": 0, "function": {"arguments": arguments[6:]}}]}}]},
                    {"id": "c2", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
                    {"id": "c2", "choices": [], "usage": usage},
                ]
                chunks = [f"data: {json.dumps(e)}\n\n".encode() for e in events] + [b"data: [DONE]\n\n"]
                self._stream("text/event-stream", chunks)

            def _openai(self, body: dict[str, Any], text: str) -> None:
                usage = {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120,
                         "prompt_tokens_details": {"cached_tokens": 40}}
                if not body.get("stream"):
                    answer = {"id": "c1", "object": "chat.completion", "model": body.get("model"),
                              "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                           "finish_reason": "stop"}], "usage": usage}
                    if outer.mode == "no_usage":  # a server that reports no counts (llama.cpp's, some proxies)
                        del answer["usage"]
                    self._json(200, answer)
                    return
                events: list[dict[str, Any]] = [
                    {"id": "c1", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
                ]
                events += [{"id": "c1", "choices": [{"index": 0, "delta": {"content": w}}]} for w in _words(text)]
                if outer.mode == "cut":  # output, then the provider fails in-band (an overloaded upstream)
                    events.append({"error": {"message": "upstream overloaded", "code": 503}})
                    self._stream("text/event-stream", [f"data: {json.dumps(e)}\n\n".encode() for e in events])
                    return
                if outer.mode != "endless":
                    events.append({"id": "c1", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                    if outer.mode != "no_usage":
                        events.append({"id": "c1", "choices": [], "usage": usage})
                chunks = [f"data: {json.dumps(e)}\n\n".encode() for e in events]
                if outer.mode != "endless":
                    chunks.append(b"data: [DONE]\n\n")
                self._stream("text/event-stream", chunks)

            def _anthropic(self, body: dict[str, Any], text: str) -> None:
                usage = {"input_tokens": 50, "output_tokens": 10, "cache_read_input_tokens": 200,
                         "cache_creation_input_tokens": 0}
                if not body.get("stream"):
                    self._json(200, {"id": "msg_1", "type": "message", "role": "assistant", "model": body.get("model"),
                                     "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
                                     "stop_sequence": None, "usage": usage})
                    return
                events: list[tuple[str, dict[str, Any]]] = [
                    ("message_start", {"type": "message_start", "message": {
                        "id": "msg_1", "type": "message", "role": "assistant", "model": body.get("model"),
                        "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}}),
                    ("content_block_start", {"type": "content_block_start", "index": 0,
                                             "content_block": {"type": "text", "text": ""}}),
                ]
                events += [("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                    "delta": {"type": "text_delta", "text": w}}) for w in _words(text)]
                events += [
                    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
                    ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                                       "usage": {"output_tokens": 10}}),
                    ("message_stop", {"type": "message_stop"}),
                ]
                self._stream("text/event-stream",
                             [f"event: {n}\ndata: {json.dumps(e)}\n\n".encode() for n, e in events])

            def _gemini(self, body: dict[str, Any], stream: bool) -> None:
                contents = body.get("contents", [])
                last = ""
                for c in reversed(contents):
                    texts = [p["text"] for p in c.get("parts", []) if "text" in p]
                    if c.get("role") == "user" and texts:
                        last = "".join(texts)
                        break
                text = f"{outer.label}: {len(contents)} contents, last: {last}"
                usage = {"promptTokenCount": 70, "candidatesTokenCount": 9, "totalTokenCount": 79}
                chunk = {"candidates": [{"content": {"role": "model", "parts": [{"text": text}]},
                                         "finishReason": "STOP", "index": 0}], "usageMetadata": usage,
                         "modelVersion": "loopback"}
                if not stream:
                    self._json(200, chunk)
                    return
                pieces = [{"candidates": [{"content": {"role": "model", "parts": [{"text": w}]}, "index": 0}]}
                          for w in _words(text)]
                pieces.append({"candidates": [{"content": {"role": "model", "parts": [{"text": ""}]},
                                               "finishReason": "STOP", "index": 0}], "usageMetadata": usage})
                self._stream("text/event-stream", [f"data: {json.dumps(p)}\r\n\r\n".encode() for p in pieces])

            def _ollama(self, body: dict[str, Any], text: str) -> None:
                final = {"model": body.get("model"), "created_at": "2026-11-25T10:00:00Z",
                         "message": {"role": "assistant", "content": ""}, "done": True, "done_reason": "stop",
                         "prompt_eval_count": 30, "eval_count": 7}
                if body.get("stream") is False:
                    self._json(200, {**final, "message": {"role": "assistant", "content": text}})
                    return
                lines = [{"model": body.get("model"), "created_at": "2026-11-25T10:00:00Z",
                          "message": {"role": "assistant", "content": w}, "done": False} for w in _words(text)]
                if outer.mode != "endless":
                    lines.append(final)
                self._stream("application/x-ndjson", [(json.dumps(x) + "\n").encode() for x in lines])

        self.httpd = _Listener(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Server:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self.gate.set()
        self.httpd.shutdown()
        self.httpd.server_close()


class _Listener(ThreadingHTTPServer):
    """A listen backlog for a fleet: the default (5) resets connections when 100 agents connect at once."""

    request_queue_size = 256


def _words(text: str) -> list[str]:
    words = text.split(" ")
    return [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]


def refused_port() -> int:
    """A port nothing listens on (bound, then closed)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


@contextmanager
def serving(*servers: Server) -> Iterator[tuple[Server, ...]]:
    for s in servers:
        s.start()
    try:
        yield servers
    finally:
        for s in servers:
            s.stop()
