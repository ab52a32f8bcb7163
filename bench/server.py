"""A loopback model server fast enough that the clients, not it, are what a benchmark measures.

A bare asyncio protocol (on uvloop when installed) speaking just enough HTTP/1.1: keep-alive,
Content-Length or chunked request bodies, and precomputed answers for OpenAI Chat Completions
and Anthropic Messages, plain or streamed (50 text chunks + usage, chunked transfer encoding as
the real APIs use). Run it in its own process so its CPU never counts against a client:

    python -m bench.server --port 0 [--chunk-delay-ms 20]

It prints ``LISTENING <port>`` once it accepts connections, and binds 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import sys
from typing import cast

if not __package__:  # run as a script: make `bench` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import payloads

_STREAM = re.compile(rb'"stream"\s*:\s*true')


def _head(status: str, content_type: str, extra: str) -> bytes:
    return (f"HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\nx-request-id: req_bench\r\n"
            f"request-id: req_bench\r\n{extra}\r\n").encode()


def _plain(body: bytes, status: str = "200 OK") -> bytes:
    return _head(status, "application/json", f"content-length: {len(body)}\r\n") + body


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


class Answer:
    """One route's responses: the whole byte string, or head + chunks for a paced stream."""

    def __init__(self, body: bytes, events: list[bytes]) -> None:
        self.plain = _plain(body)
        sse = "transfer-encoding: chunked\r\ncache-control: no-cache\r\n"
        self.stream_head = _head("200 OK", "text/event-stream", sse)
        self.stream_chunks = [_chunk(e) for e in events]
        self.stream_end = b"0\r\n\r\n"
        self.stream_all = self.stream_head + b"".join(self.stream_chunks) + self.stream_end


OPENAI = Answer(payloads.openai_body(), payloads.openai_events())
ANTHROPIC = Answer(payloads.anthropic_body(), payloads.anthropic_events())
MODELS = _plain(payloads.models_body())
NOT_FOUND = _plain(b'{"error":{"message":"no such route","type":"not_found_error"}}', "404 Not Found")


def _read_chunked(buf: bytearray, start: int) -> tuple[bytes, int] | None:
    """(body, end offset) of a chunked request body starting at ``start``, or None if incomplete."""
    body = bytearray()
    pos = start
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size = int(bytes(buf[pos:eol]).split(b";")[0], 16)
        pos = eol + 2
        if size == 0:
            end = buf.find(b"\r\n", pos)  # no trailers expected: just the closing CRLF
            return (bytes(body), end + 2) if end >= 0 else None
        if len(buf) < pos + size + 2:
            return None
        body += buf[pos:pos + size]
        pos += size + 2


class Connection(asyncio.Protocol):
    def __init__(self, chunk_delay: float) -> None:
        self.chunk_delay = chunk_delay
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.pacing: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses

    def connection_lost(self, exc: Exception | None) -> None:
        if self.pacing is not None:
            self.pacing.cancel()
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.pacing is None:
            self._serve()

    def _serve(self) -> None:
        while self.transport is not None and self.pacing is None:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
            method, target = lines[0].split(" ", 2)[:2]
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            if headers.get("transfer-encoding", "").lower() == "chunked":
                parsed = _read_chunked(self.buf, end + 4)
                if parsed is None:
                    return
                body, stop = parsed
            else:
                stop = end + 4 + int(headers.get("content-length", "0"))
                if len(self.buf) < stop:
                    return
                body = bytes(self.buf[end + 4:stop])
            del self.buf[:stop]
            self._answer(method, target.split("?", 1)[0], body)
            if headers.get("connection", "").lower() == "close" and self.transport is not None:
                self.transport.close()

    def _answer(self, method: str, path: str, body: bytes) -> None:
        assert self.transport is not None
        if path.endswith("/chat/completions"):
            answer = OPENAI
        elif path.endswith("/messages"):
            answer = ANTHROPIC
        elif method == "GET" and path.endswith("/models"):
            self.transport.write(MODELS)
            return
        else:
            self.transport.write(NOT_FOUND)
            return
        if not _STREAM.search(body):
            self.transport.write(answer.plain)
        elif self.chunk_delay <= 0:
            self.transport.write(answer.stream_all)
        else:
            self.pacing = asyncio.get_running_loop().create_task(self._paced(answer))

    async def _paced(self, answer: Answer) -> None:
        try:
            transport = self.transport
            assert transport is not None
            transport.write(answer.stream_head)
            for chunk in answer.stream_chunks:
                transport.write(chunk)
                await asyncio.sleep(self.chunk_delay)
                if self.transport is None:
                    return
            transport.write(answer.stream_end)
        finally:
            self.pacing = None
        self._serve()


async def serve(port: int, chunk_delay: float) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Connection(chunk_delay), "127.0.0.1", port, backlog=1024)
    bound = server.sockets[0].getsockname()[1]
    print(f"LISTENING {bound}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--chunk-delay-ms", type=float, default=0.0,
                        help="pause between streamed chunks (0: send the whole stream at once)")
    parser.add_argument("--no-uvloop", action="store_true")
    args = parser.parse_args(argv)
    if not args.no_uvloop:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            uvloop.install()
    asyncio.run(serve(args.port, args.chunk_delay_ms / 1000))


if __name__ == "__main__":
    main()
