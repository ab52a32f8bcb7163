"""The byte-moving seam under the transport: one small request/response vocabulary, two clients.

The transport (retries, typed errors, observers) and the adapters' stream decoders speak only
the types here, never a client library's own, so the HTTP client underneath is a choice made in
one place. ``aiohttp`` is the default because it won the measurement in bench/ (about a third of
httpx2's CPU per request and five times its throughput with 64 requests in flight; figures in
docs/benchmarks.md); ``httpx2`` stays available behind the same seam (``IRONSPIRE_HTTP_CLIENT``
or ``Transport(http=...)``) and is what tests use to inject an in-memory transport.

Each client's module is imported only when a pool is first opened, so loading an adapter to
encode or decode costs nothing of either library.
"""

from __future__ import annotations

import codecs
import functools
import json
import os
import ssl
import threading
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ironspire.http._httpx2 import ByteTransport

DEFAULT_CLIENT = "aiohttp"
CLIENT_ENV = "IRONSPIRE_HTTP_CLIENT"
_MODULES = {"aiohttp": "ironspire.http._aiohttp", "httpx2": "ironspire.http._httpx2"}


# --- failures to get an answer (an HTTP error status is an answer, not one of these) ---------


class HttpFailure(Exception):
    """No (complete) answer from the server; the transport turns it into a ProviderUnavailable.
    ``kind`` names what happened in the words messages use (ConnectError, ReadTimeout...), the
    same whichever client is underneath."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind


class ConnectFailed(HttpFailure):
    """No connection was made at all: refused, unknown host, unreachable."""


class TimedOut(HttpFailure):
    """A time limit ran out; ``phase`` is connect, read, write or pool."""

    @property
    def phase(self) -> str:
        return _PHASES.get(self.kind, "read")


_PHASES = {"ConnectTimeout": "connect", "WriteTimeout": "write", "PoolTimeout": "pool"}


class ConnectTimedOut(TimedOut, ConnectFailed):
    """No connection within the connect timeout: both never connected and timed out."""

    def __init__(self, detail: str = "") -> None:
        super().__init__("ConnectTimeout", detail)


class ConnectionLost(HttpFailure):
    """The connection broke after it was made: reset, closed early, a malformed response."""


class BodyTooLarge(HttpFailure):
    """A body read whole passed ``MAX_BODY_BYTES`` (declared by Content-Length, or counted while
    it arrived): reading stopped there, so a hostile server cannot fill memory. Never retried."""

    def __init__(self, limit: int, detail: str = "") -> None:
        super().__init__("BodyTooLarge", detail)
        self.limit = limit


#: the most bytes a response body read whole (``aread``) may have; streams are capped by their
#: own decoders (protocols.framing). Read at each call, so a test can lower it.
MAX_BODY_BYTES = 64 * 1024 * 1024


async def read_capped(chunks: AsyncIterator[bytes], declared: str | None) -> bytes:
    """The body from ``chunks``, refused before reading when its Content-Length is over the cap
    and stopped as soon as the bytes received pass it."""
    limit = MAX_BODY_BYTES
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit, f"Content-Length {int(declared)}")
    parts: list[bytes] = []
    total = 0
    async for chunk in chunks:
        total += len(chunk)
        if total > limit:
            raise BodyTooLarge(limit, f"more than {total} bytes")
        parts.append(chunk)
    return b"".join(parts)


# --- the vocabulary --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Limits:
    """Pool sizes per provider. Keep-alive must cover the concurrency one provider sees, or every
    request past it opens (and then drops) a fresh connection."""

    max_connections: int = 100
    max_keepalive: int = 100
    keepalive_expiry: float = 30.0

    def __post_init__(self) -> None:
        if self.max_keepalive > self.max_connections or self.max_connections < 1:
            raise ValueError("need 1 <= max_keepalive <= max_connections")


@dataclass(frozen=True, slots=True)
class Timeouts:
    """``read``: the longest silence between two reads (a stream may run longer in total);
    ``connect``: to open a connection."""

    read: float
    connect: float


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    url: str
    headers: Mapping[str, str]
    content: bytes | None = None
    timeouts: Timeouts | None = None  # None: the pool's own


class Response(ABC):
    """An answer whose head has arrived; the body is read with ``aread`` or one of the iterators,
    and ``aclose`` returns the connection to its pool (or drops it when the body was not read)."""

    status_code: int
    headers: Mapping[str, str]  # names case-insensitive
    _body: bytes | None  # set by ``aread``; each client's subclass starts it at None

    @property
    def content(self) -> bytes:
        """The whole body; only after ``aread``."""
        if self._body is None:
            raise RuntimeError("the body has not been read (await aread() first)")
        return self._body

    async def aread(self) -> bytes:
        """The whole body, read once and within ``MAX_BODY_BYTES``."""
        if self._body is None:
            self._body = await self._read_whole()
        return self._body

    @abstractmethod
    async def _read_whole(self) -> bytes:
        """The client's side of ``aread``: ``read_capped`` over its chunks, dropping the
        connection when the read fails or passes the cap."""

    def json(self) -> Any:
        """The body parsed as JSON (only after ``aread``; a ValueError when it is not JSON)."""
        return json.loads(self.content)

    @abstractmethod
    def aiter_bytes(self) -> AsyncIterator[bytes]: ...

    async def aiter_text(self) -> AsyncIterator[str]:
        """The body as UTF-8 text, a character split between reads kept whole."""
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        async for chunk in self.aiter_bytes():
            text = decoder.decode(chunk)
            if text:
                yield text
        rest = decoder.decode(b"", final=True)
        if rest:
            yield rest

    async def aiter_lines(self) -> AsyncIterator[str]:
        """Lines ended by CRLF, LF or CR (the rule SSE and NDJSON share), without their ending."""
        decoder = LineDecoder()
        async for chunk in self.aiter_bytes():
            for line in decoder.feed(chunk):
                yield line
        for line in decoder.flush():
            yield line

    @abstractmethod
    async def aclose(self) -> None: ...


class Client(Protocol):
    """One provider's pool."""

    @property
    def is_closed(self) -> bool: ...

    async def send(self, request: Request, *, stream: bool) -> Response:
        """The answer (any status); raises only an ``HttpFailure``. Unless ``stream``, the body
        has been read and the connection released."""
        ...

    async def aclose(self) -> None: ...


ClientFactory = Callable[[str, Limits, Timeouts], Client]
"""Builds the pool for one provider id with its limits and default timeouts."""


#: the thread building the TLS context beside the HTTP client's import (``prefetch_tls``)
_prefetch: threading.Thread | None = None


def tls_context() -> ssl.SSLContext:
    """The one TLS context every pool of this process uses, whichever client: building one reads
    the CA bundle (tens to hundreds of milliseconds of the event loop), so it is done once, when
    the first https pool opens (or its first request), not per provider. certifi's bundle when
    installed (what httpx used), else the system's."""
    global _prefetch
    building = _prefetch
    if building is not None:  # started beside the client's import: wait for it, never build a second
        building.join()
        _prefetch = None
    return _build_tls()


def is_https(url: str) -> bool:
    """Whether requests to ``url`` need the TLS context (per request: no URL parsing)."""
    return url[:6].lower() == "https:"


def prefetch_tls(url: str) -> None:
    """Starts building ``tls_context`` in a thread when a pool about to open is for an https ``url``.

    OpenSSL parses the CA bundle with the GIL released, so the build runs beside what the first
    request does meanwhile (importing the HTTP client: ~200 ms) instead of after it: ~20 ms less
    to a process's first https answer on this VM (bench/notes.md). A plain-HTTP pool (a local
    model) starts nothing, so a process that only has those never builds one."""
    global _prefetch
    if is_https(url) and _prefetch is None and _build_tls.cache_info().currsize == 0:
        _prefetch = threading.Thread(target=_build_tls, name="ironspire-tls", daemon=True)
        _prefetch.start()


@functools.cache
def _build_tls() -> ssl.SSLContext:
    try:
        import certifi
    except ImportError:
        return ssl.create_default_context()
    return ssl.create_default_context(cafile=certifi.where())


def client_factory(name: str | None = None) -> ClientFactory:
    """The factory of a named client (``aiohttp`` or ``httpx2``; default: $IRONSPIRE_HTTP_CLIENT,
    else ``DEFAULT_CLIENT``)."""
    chosen = name or os.environ.get(CLIENT_ENV) or DEFAULT_CLIENT
    module = _MODULES.get(chosen)
    if module is None:
        from ironspire.errors import ConfigurationError

        raise ConfigurationError(
            f"unknown HTTP client {chosen!r}", hint=f"set {CLIENT_ENV} to one of: {', '.join(sorted(_MODULES))}"
        )

    def build(provider_id: str, limits: Limits, timeouts: Timeouts) -> Client:
        factory: ClientFactory = import_module(module).open_client
        return factory(provider_id, limits, timeouts)

    return build


def through(transport: ByteTransport) -> ClientFactory:
    """Pools that send through an ``httpx2.AsyncBaseTransport`` (or a function giving one per
    provider id) instead of the network: an in-memory server for tests, a custom transport for
    embedders. The rest of the path (retries, typed errors, decoding) is the production one."""
    from ironspire.http._httpx2 import factory

    return factory(transport)


class LineDecoder:
    """Splits a byte stream into text lines across chunk boundaries (a CR at the end of one chunk
    may be the first half of a CRLF)."""

    __slots__ = ("_cr", "_partial")

    def __init__(self) -> None:
        self._partial = b""
        self._cr = False

    def feed(self, chunk: bytes) -> list[str]:
        if self._cr:
            self._cr = False
            if chunk.startswith(b"\n"):
                chunk = chunk[1:]
        if not chunk:
            return []
        data = self._partial + chunk
        lines = data.splitlines()
        if data[-1:] == b"\r":
            self._cr = True
            self._partial = b""
        elif data[-1:] == b"\n":
            self._partial = b""
        else:
            self._partial = lines.pop() if lines else b""
        return [line.decode("utf-8", "replace") for line in lines]

    def flush(self) -> list[str]:
        rest, self._partial = self._partial, b""
        return [rest.decode("utf-8", "replace")] if rest else []
