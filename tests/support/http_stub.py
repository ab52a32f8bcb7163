"""A real HTTP/1.1 server on 127.0.0.1, in the test's own event loop, for fault tests.

Each route answers with a fixed status, headers and body, never answers at all (``hang``), or
writes broken bytes and hangs up (``raw``), so tests see what a real socket does: timeouts,
refused connections, keep-alive, resets. Requests are
recorded with their headers so tests can check what a client actually sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Reply:
    status: int = 200
    body: bytes | str | dict[str, Any] | list[Any] = b""
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False
    raw: bytes | None = None  # written as is instead of a response, then the connection is closed

    def payload(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body).encode()


@dataclass
class Seen:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]


class StubServer:
    """``async with StubServer({"/v1/models": Reply(200, {...})}) as s: s.url``"""

    def __init__(self, routes: dict[str, Reply] | None = None, default: Reply | None = None,
                 resolver: Callable[[Seen], Reply | None] | None = None) -> None:
        self.routes = dict(routes or {})
        self.resolver = resolver
        self.default = default or Reply(404, {"error": {"message": "no such route"}})
        self.seen: list[Seen] = []
        self._server: asyncio.Server | None = None
        self._closing = asyncio.Event()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> StubServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._closing.set()
        self._server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:] if ":" in ln)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.seen.append(Seen(method, target, headers, body))
                seen = self.seen[-1]
                reply = (self.resolver(seen) if self.resolver else None) or self.routes.get(seen.path, self.default)
                if reply.hang:
                    await self._closing.wait()
                    return
                if reply.raw is not None:
                    writer.write(reply.raw)
                    await writer.drain()
                    return
                payload = reply.payload()
                out = [f"HTTP/1.1 {reply.status} X", f"content-length: {len(payload)}"]
                if not any(k.lower() == "content-type" for k in reply.headers):
                    out.append("content-type: application/json")
                out += [f"{k}: {v}" for k, v in reply.headers.items()]
                writer.write(("\r\n".join(out) + "\r\n\r\n").encode() + payload)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


def refused_port() -> int:
    """A port that nothing listens on (bound then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
