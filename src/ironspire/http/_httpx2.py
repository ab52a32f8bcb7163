"""The alternative client: one httpx2.AsyncClient per provider (the httpx API, maintained).

Also the way to put an in-memory server under the transport: ``factory(httpx2.MockTransport(...))``
gives a client factory whose pools send through it.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable, Mapping

import httpx2

from ironspire.http import (
    BodyTooLarge,
    ClientFactory,
    ConnectFailed,
    ConnectionLost,
    ConnectTimedOut,
    HttpFailure,
    Limits,
    Request,
    Response,
    TimedOut,
    Timeouts,
    read_capped,
    tls_context,
)

ByteTransport = httpx2.AsyncBaseTransport | Callable[[str], httpx2.AsyncBaseTransport]


def _timeout(t: Timeouts) -> httpx2.Timeout:
    return httpx2.Timeout(t.read, connect=t.connect)


def _failure(exc: httpx2.TransportError) -> HttpFailure:
    kind, detail = type(exc).__name__, str(exc)
    if isinstance(exc, httpx2.ConnectTimeout):
        return ConnectTimedOut(detail)
    if isinstance(exc, httpx2.TimeoutException):
        return TimedOut(kind, detail)
    if isinstance(exc, (httpx2.ConnectError, httpx2.UnsupportedProtocol)):
        return ConnectFailed(kind, detail)
    return ConnectionLost(kind, detail)


class _Response(Response):
    __slots__ = ("_body", "_raw", "headers", "status_code")

    def __init__(self, raw: httpx2.Response) -> None:
        self._raw = raw
        self.status_code = raw.status_code
        self.headers: Mapping[str, str] = raw.headers
        self._body: bytes | None = None

    async def _read_whole(self) -> bytes:
        try:
            return await read_capped(self._raw.aiter_bytes(), self._raw.headers.get("content-length"))
        except BodyTooLarge:
            await self._raw.aclose()
            raise
        except httpx2.TransportError as exc:
            raise _failure(exc) from exc

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._raw.aiter_bytes():
                yield chunk
        except httpx2.TransportError as exc:
            raise _failure(exc) from exc

    async def aclose(self) -> None:
        await self._raw.aclose()


class Httpx2Client:
    def __init__(self, limits: Limits, timeouts: Timeouts, transport: httpx2.AsyncBaseTransport | None = None) -> None:
        pool = httpx2.Limits(max_connections=limits.max_connections,
                             max_keepalive_connections=limits.max_keepalive, keepalive_expiry=limits.keepalive_expiry)
        # an injected transport brings its own TLS (if any); the network gets the shared context
        verify: ssl.SSLContext | bool = tls_context() if transport is None else True
        self._client = httpx2.AsyncClient(timeout=_timeout(timeouts), limits=pool, trust_env=False,
                                          transport=transport, follow_redirects=True, verify=verify)

    @property
    def is_closed(self) -> bool:
        return self._client.is_closed

    async def send(self, request: Request, *, stream: bool) -> Response:
        timeout = self._client.timeout if request.timeouts is None else _timeout(request.timeouts)
        built = self._client.build_request(request.method, request.url, headers=request.headers,
                                           content=request.content, timeout=timeout)
        try:  # always streamed: a body read whole is read by aread, under the cap
            response = _Response(await self._client.send(built, stream=True))
        except httpx2.TransportError as exc:
            raise _failure(exc) from exc
        if not stream:
            try:
                await response.aread()
            finally:
                await response._raw.aclose()
        return response

    async def aclose(self) -> None:
        await self._client.aclose()


def open_client(provider_id: str, limits: Limits, timeouts: Timeouts) -> Httpx2Client:
    return Httpx2Client(limits, timeouts)


def factory(transport: ByteTransport) -> ClientFactory:
    """Pools that send through ``transport`` (one for all providers, or one per provider id)."""

    def build(provider_id: str, limits: Limits, timeouts: Timeouts) -> Httpx2Client:
        chosen = transport if isinstance(transport, httpx2.AsyncBaseTransport) else transport(provider_id)
        return Httpx2Client(limits, timeouts, chosen)

    return build
