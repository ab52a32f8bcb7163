"""The default client: one aiohttp ClientSession (and connector) per provider.

aiohttp parses HTTP in C (llhttp) and reads bodies without per-chunk Python layers, which is
where httpx/httpcore spend most of their CPU per request. The session is bound to the event loop
it was made on; on another loop it reports itself closed so the transport opens a fresh pool
instead of failing (a CLI command or a test may run several loops over one Workspace).

A pool nobody closed is closed when its loop ends: each client keeps a suspended async generator
whose ``finally`` closes the session, and ``asyncio.run`` / ``asyncio.Runner`` close every live
async generator of their loop before closing it (``loop.shutdown_asyncgens``). So a sync caller
that ran one turn with ``asyncio.run`` and never closed the transport leaves no open sockets
behind and no "Unclosed client session" noise.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncGenerator, AsyncIterator, Mapping

import aiohttp
from yarl import URL

from ironspire.http import (
    BodyTooLarge,
    ConnectFailed,
    ConnectionLost,
    ConnectTimedOut,
    HttpFailure,
    Limits,
    Request,
    Response,
    TimedOut,
    Timeouts,
    is_https,
    read_capped,
    tls_context,
)


def _timeout(t: Timeouts) -> aiohttp.ClientTimeout:
    # no total bound: a stream may run for minutes while every read arrives in time; waiting for
    # a free pooled connection plus connecting is bounded by the read limit, as httpx's pool timeout was
    return aiohttp.ClientTimeout(total=None, connect=t.read + t.connect, sock_connect=t.connect, sock_read=t.read)


def _failure(exc: BaseException) -> HttpFailure:
    detail = str(exc)
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return ConnectTimedOut(detail)
    if isinstance(exc, (aiohttp.SocketTimeoutError, asyncio.TimeoutError)):
        return TimedOut("ReadTimeout", detail)
    if isinstance(exc, (aiohttp.ClientConnectorError, aiohttp.InvalidURL)):
        return ConnectFailed("ConnectError", detail)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return ConnectionLost("RemoteProtocolError", detail or "server disconnected")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return ConnectionLost("ReadError", detail)
    return ConnectionLost(type(exc).__name__, detail)


def _tls(url: str) -> ssl.SSLContext | bool:
    """The process's one TLS context for an https URL (made at the first); True (aiohttp's own
    verified default, used only if a plain-HTTP request is redirected to https) otherwise."""
    return tls_context() if is_https(url) else True


class _Response(Response):
    __slots__ = ("_body", "_raw", "headers", "status_code")

    def __init__(self, raw: aiohttp.ClientResponse) -> None:
        self._raw = raw
        self.status_code = raw.status
        self.headers: Mapping[str, str] = raw.headers
        self._body: bytes | None = None

    async def _read_whole(self) -> bytes:
        try:
            return await read_capped(self._raw.content.iter_any(), self._raw.headers.get("Content-Length"))
        except BodyTooLarge:
            self._raw.close()  # the rest is never read: the connection is dropped, not pooled
            raise
        except (TimeoutError, aiohttp.ClientError) as exc:
            self._raw.close()
            raise _failure(exc) from exc

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._raw.content.iter_any():
                yield chunk
        except (TimeoutError, aiohttp.ClientError) as exc:
            self._raw.close()
            raise _failure(exc) from exc

    async def aclose(self) -> None:
        # release() returns a fully read connection to the pool and closes one with unread body
        self._raw.release()


class AiohttpClient:
    def __init__(self, limits: Limits, timeouts: Timeouts) -> None:
        self._loop = asyncio.get_running_loop()
        # every connection the pool may open is also kept alive: aiohttp has no smaller keep-alive count
        # the TLS context is given per https request (``_tls``): building it reads the CA bundle
        # (~20 ms), which a pool that only ever speaks plain HTTP (a local model) never needs
        connector = aiohttp.TCPConnector(limit=limits.max_connections, limit_per_host=limits.max_connections,
                                         keepalive_timeout=limits.keepalive_expiry)
        self._timeout = _timeout(timeouts)
        self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout, trust_env=False,
                                              auto_decompress=True, raise_for_status=False)

        self._guard = _closes_with_loop(self._session)
        self._armed = False

    @property
    def is_closed(self) -> bool:
        if self._session.closed:
            return True
        try:
            return asyncio.get_running_loop() is not self._loop
        except RuntimeError:
            return False

    async def send(self, request: Request, *, stream: bool) -> Response:
        if not self._armed:  # its first step registers it with the running loop's shutdown
            self._armed = True
            await anext(self._guard)
        timeout = self._timeout if request.timeouts is None else _timeout(request.timeouts)
        try:
            # encoded=True: the URL goes out byte for byte as built (a SigV4 signature covers its path)
            raw = await self._session.request(request.method, URL(request.url, encoded=True),
                                              headers=dict(request.headers), data=request.content,
                                              allow_redirects=True, timeout=timeout, ssl=_tls(request.url))
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise _failure(exc) from exc
        response = _Response(raw)
        if not stream:
            try:
                await response.aread()
            finally:
                raw.release()
        return response

    async def aclose(self) -> None:
        if self._loop is not _current_loop():
            return  # its loop is gone: nothing can be awaited there; the OS reclaims the sockets
        if self._armed:
            await self._guard.aclose()  # its finally closes the session
        await self._session.close()


async def _closes_with_loop(session: aiohttp.ClientSession) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        if not session.closed:
            await session.close()


def _current_loop() -> asyncio.AbstractEventLoop | None:
    with contextlib.suppress(RuntimeError):
        return asyncio.get_running_loop()
    return None


def open_client(provider_id: str, limits: Limits, timeouts: Timeouts) -> AiohttpClient:
    return AiohttpClient(limits, timeouts)
