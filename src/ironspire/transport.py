"""Moving bytes to providers: pooled clients, timeouts, bounded retries, typed errors.

One pool per provider keeps connections warm for that provider's agents and lets disabling a
provider close exactly its pool; a provider whose requests fail (timeouts, resets, broken
answers) can never starve another's. Auth is applied by the adapter when it builds the request;
this module never looks at credentials, only at statuses and timing. Every failure leaves here
as a ProviderError subclass so callers never see an HTTP client's exception.

Two seams are injected rather than built in, so tests, embedders and a client swap need not
reach inside: ``http`` builds each provider's pool (an ``ironspire.http.ClientFactory``; ``None``
means the default client, aiohttp, over the network; ``ironspire.http.through(...)`` puts an
httpx2 transport such as a MockTransport underneath), and ``classify`` reads an HTTP failure when
the caller brings no adapter to read it (probes and model listings do not). There is no
process-wide default Transport: whoever opens a workspace owns its pools.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import random
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit

from ironspire.errors import (
    AuthenticationError,
    BadRequest,
    ContextWindowExceeded,
    ModelNotFound,
    ProviderError,
    ProviderUnavailable,
    RateLimitError,
)
from ironspire.http import (
    BodyTooLarge,
    Client,
    ClientFactory,
    ConnectFailed,
    HttpFailure,
    Limits,
    Request,
    Response,
    TimedOut,
    Timeouts,
    client_factory,
    prefetch_tls,
)
from ironspire.wire import Target, WireRequest

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
Observer = Callable[[str, "ProviderError | None", float], None]
Classifier = Callable[[int, Mapping[str, str], bytes, Target], ProviderError]
"""Reads one failed HTTP answer (status, headers, body) as a typed error for ``target``."""


class Classifies(Protocol):
    """Anything that reads a failure for its wire format: every HTTP adapter (``error``)."""

    def error(self, status: int, headers: Mapping[str, str], body: bytes, target: Target) -> ProviderError: ...


def never_connected(error: BaseException) -> bool:
    """Whether a ProviderUnavailable from this module means no connection was made at all (refused,
    unknown host, no connection in time) rather than a server that stopped answering. Callers say
    different things: a local Ollama that is not running is told to start, a stalled one is not.
    Asked through this function so the HTTP client underneath can change without callers knowing."""
    return isinstance(error.__cause__, ConnectFailed)


def timed_out(error: BaseException) -> bool:
    """Whether a ProviderUnavailable from this module means the time ran out (any phase)."""
    return isinstance(error.__cause__, TimedOut)


def cause_name(error: BaseException) -> str:
    """The low-level failure's name (ConnectError, ReadTimeout...), for messages."""
    cause = error.__cause__
    if isinstance(cause, HttpFailure):
        return cause.kind
    return type(cause).__name__ if cause is not None else type(error).__name__


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 20.0

    def delay(self, attempt: int, hinted: float | None) -> float:
        if hinted is not None:
            return min(max(hinted, 0.0), self.max_delay)
        backoff: float = min(self.base_delay * 2**attempt, self.max_delay)
        return backoff * (0.5 + random.random() / 2)


def _body(wire: WireRequest) -> tuple[bytes | None, dict[str, str]]:
    """The request body and the headers it implies (compact JSON, as providers' own SDKs send)."""
    if wire.json is None:
        return wire.content, {}
    content = json.dumps(wire.json, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
    if any(name.lower() == "content-type" for name in wire.headers):
        return content, {}
    return content, {"content-type": "application/json"}


def _url(wire: WireRequest) -> str:
    if not wire.params:
        return wire.url
    return wire.url + ("&" if "?" in wire.url else "?") + urlencode(wire.params, doseq=True)


class Transport:
    """Per-provider connection pools plus the retry loop, shared by every HTTP adapter.

    ``max_connections`` is per provider, and every one of them is also kept alive between
    requests: keep-alive below the concurrency one provider sees would open and drop a fresh
    connection for each request past it.
    """

    def __init__(
        self,
        retry: RetryPolicy | None = None,
        max_connections: int = 100,
        *,
        http: ClientFactory | None = None,
        classify: Classifier | None = None,
    ) -> None:
        self.retry = retry or RetryPolicy()
        self._clients: dict[str, Client] = {}
        self.limits = Limits(max_connections=max_connections, max_keepalive=max_connections)
        self._factory = http
        self._network = http is None  # the real clients (an injected transport brings its own TLS)
        self.classify: Classifier = classify or classify_http_error
        self.observers: list[Observer] = []

    def client(self, target: Target) -> Client:
        key = target.provider.id
        client = self._clients.get(key)
        if client is None or client.is_closed:
            if self._factory is None:
                self._factory = client_factory()
            if self._network:  # an https pool's TLS context builds while the client's library loads
                prefetch_tls(target.base_url)
            client = self._factory(key, self.limits, Timeouts(target.timeout, target.connect_timeout))
            self._clients[key] = client
        return client

    def has_pool(self, provider_id: str) -> bool:
        client = self._clients.get(provider_id)
        return client is not None and not client.is_closed

    async def close(self, provider_id: str | None = None) -> None:
        """Closes one provider's pool (disable / re-enable) or all of them."""
        keys = [provider_id] if provider_id else list(self._clients)
        for key in keys:
            client = self._clients.pop(key, None)
            if client is not None:
                await client.aclose()

    async def __aenter__(self) -> Transport:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        await self.close()

    def _notify(self, target: Target, error: ProviderError | None, started: float) -> None:
        for observer in self.observers:
            observer(target.provider.id, error, time.perf_counter() - started)

    def _reader(self, protocol: Classifies | None) -> Classifier:
        return protocol.error if protocol is not None else self.classify

    def _build(self, wire: WireRequest, timeouts: Timeouts | None) -> Request:
        content, implied = _body(wire)
        headers = {**implied, **wire.headers} if implied else wire.headers
        return Request(wire.method, _url(wire), headers, content, timeouts)

    async def _attempt(
        self, client: Client, request: Request, wire: WireRequest, target: Target, *, stream: bool
    ) -> Response:
        """One send; a failure to get any answer leaves as ProviderUnavailable, caused by the
        client's failure (read by ``never_connected`` / ``timed_out`` / ``cause_name``)."""
        try:
            return await client.send(request, stream=stream)
        except TimedOut as exc:
            raise ProviderUnavailable(target.provider.id, f"timed out ({exc.kind})", model=target.model.id) from exc
        except BodyTooLarge as exc:
            raise ProviderUnavailable(target.provider.id, f"the response passed {exc.limit // 2**20} MiB ({exc}); "
                                      "reading stopped there and nothing was saved", model=target.model.id) from exc
        except HttpFailure as exc:
            raise ProviderUnavailable(target.provider.id, f"cannot connect to {origin(wire.url)} ({exc.kind})",
                                      model=target.model.id) from exc

    async def _send(
        self, wire: WireRequest, target: Target, protocol: Classifies | None, *, stream: bool
    ) -> Response:
        client = self.client(target)
        classify = self._reader(protocol)
        # per request, not per pool: a listing or probe may have opened the pool with its own short
        # limits, and a changed timeout setting applies at the next request
        request = self._build(wire, Timeouts(target.timeout, target.connect_timeout))
        attempt = 0
        started = time.perf_counter()
        while True:
            error: ProviderError
            try:
                response = await self._attempt(client, request, wire, target, stream=stream)
            except ProviderUnavailable as exc:
                if isinstance(exc.__cause__, BodyTooLarge):  # the same server would send it again
                    self._notify(target, exc, started)
                    raise
                error = exc
            else:
                if response.status_code < 400:
                    self._notify(target, None, started)
                    return response
                try:
                    body = await response.aread()
                except HttpFailure:
                    body = b""
                finally:
                    await response.aclose()
                error = classify(response.status_code, response.headers, body, target)
                if not _retryable(response, error):
                    self._notify(target, error, started)
                    raise error
            if attempt + 1 >= self.retry.attempts:
                self._notify(target, error, started)
                raise error
            hinted = error.retry_after if isinstance(error, RateLimitError) else None
            await asyncio.sleep(self.retry.delay(attempt, hinted))
            attempt += 1

    async def request(self, wire: WireRequest, target: Target, protocol: Classifies | None = None) -> bytes:
        """A complete response body; failures are read by ``protocol.error`` (else ``classify``)."""
        response = await self._send(wire, target, protocol, stream=False)
        return response.content

    @asynccontextmanager
    async def stream(
        self, wire: WireRequest, target: Target, protocol: Classifies | None = None
    ) -> AsyncIterator[Response]:
        """A streamed response. Retries happen only before the first byte reaches the caller."""
        response = await self._send(wire, target, protocol, stream=True)
        try:
            yield response
        except TimedOut as exc:
            raise ProviderUnavailable(
                target.provider.id, f"stream stalled ({exc.kind})", model=target.model.id
            ) from exc
        except HttpFailure as exc:
            raise ProviderUnavailable(
                target.provider.id, f"stream cut off ({exc.kind})", model=target.model.id
            ) from exc
        finally:
            await response.aclose()

    async def fetch(
        self,
        wire: WireRequest,
        target: Target,
        protocol: Classifies | None = None,
        *,
        read_timeout: float | None = None,
        connect_timeout: float | None = None,
        observe: bool = True,
    ) -> Response:
        """One attempt, no retries, for health probes and model listings: they must answer within
        their own time, not after backoff. It goes through the provider's pool (warming it) and its
        outcome reaches the observers like any request's. Any answer is returned with its body read,
        failures included (the caller decides what a 404 from a listing means); only getting no
        answer raises (ProviderUnavailable; ``never_connected`` tells whether a connection was
        made). A health probe passes ``observe=False``: the monitor records its own verdict, which
        may read an answer differently."""
        client = self.client(target)
        read = read_timeout if read_timeout is not None else target.timeout
        connect = connect_timeout if connect_timeout is not None else (
            read if read_timeout is not None else target.connect_timeout)
        started = time.perf_counter()
        try:
            response = await self._attempt(client, self._build(wire, Timeouts(read, connect)), wire, target,
                                           stream=False)
        except ProviderUnavailable as exc:
            if observe:
                self._notify(target, exc, started)
            raise
        if observe:
            error = None
            if response.status_code >= 400:
                error = self._reader(protocol)(response.status_code, response.headers, response.content, target)
            self._notify(target, error, started)
        return response


def origin(url: str) -> str:
    """scheme://host[:port] of a URL: where a failure happened, without path or query."""
    u = urlsplit(url)
    try:
        port = u.port
    except ValueError:  # a malformed port: name the host alone
        port = None
    return f"{u.scheme}://{u.hostname or ''}" + (f":{port}" if port else "")


def _retryable(response: Response, error: ProviderError) -> bool:
    should = response.headers.get("x-should-retry")
    if should == "false":
        return False
    if should == "true":
        return True
    if isinstance(error, RateLimitError) and "insufficient_quota" in (error.raw or ""):
        return False  # OpenAI's billing quota is spent: retrying cannot help (per-minute limits can)
    return response.status_code in RETRY_STATUSES


# --- error classification --------------------------------------------------------------------

_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+(?:\.\d+)?)ms)?$")
_CONTEXT_PATTERNS = (
    "context_length_exceeded",
    "maximum context length",
    "prompt is too long",
    "exceed context limit",
    "input is too long",
    "too many tokens",
    "too large for model with",
    "exceeds the maximum number of tokens",
    "context window",
    "exceeds the context",
)


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait, from retry-after(-ms) or the x-ratelimit-reset-* headers; a value that is
    not a finite number of seconds (nan, inf, garbage) is no hint, and a huge one is capped."""
    return sane_wait(_retry_after(headers, now))


#: the longest wait a provider's hint may impose (a day); beyond it the hint is nonsense
MAX_RETRY_AFTER = 86_400.0


def sane_wait(seconds: float | None) -> float | None:
    import math

    if seconds is None or not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _retry_after(headers: Mapping[str, str], now: float | None) -> float | None:
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value:
        try:
            return float(value)
        except ValueError:
            try:
                parsed = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError, IndexError, OverflowError):
                parsed = None
            if parsed is not None:
                return max(parsed.timestamp() - (now if now is not None else time.time()), 0.0)
    for name in ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"):
        raw = headers.get(name)
        if raw:
            seconds = parse_duration(raw)
            if seconds is not None:
                return seconds
    return None


def parse_duration(raw: str) -> float | None:
    """Go-style durations as OpenAI and Groq send them: "1s", "6m0s", "120ms", "1h2m3.5s"."""
    raw = raw.strip()
    try:
        return float(raw)
    except ValueError:
        pass
    m = _DURATION.match(raw)
    if not m or not any(m.groups()):
        return None
    h, mi, s, ms = (float(g) if g else 0.0 for g in m.groups())
    return h * 3600 + mi * 60 + s + ms / 1000


def error_message(body: bytes) -> tuple[str, str | None, Any]:
    """(message, code, parsed JSON) from the error bodies providers send (several shapes)."""
    text = body.decode("utf-8", "replace").strip()
    try:
        data: Any = json.loads(text) if text else None
    except json.JSONDecodeError:
        return (text[:500] or "no error text"), None, None
    if isinstance(data, list) and data and isinstance(data[0], dict):
        data = data[0]
    if not isinstance(data, dict):
        return text[:500], None, data
    err = data.get("error", data)
    if isinstance(err, str):
        return err, _str(data.get("code") or data.get("type")), data
    if isinstance(err, dict):
        message = err.get("message") or err.get("msg") or json.dumps(err)[:500]
        code = err.get("code") or err.get("type") or err.get("status")
        return str(message), _str(code), data
    message = data.get("message") or data.get("detail") or text[:500]
    return str(message), _str(data.get("code") or data.get("type") or data.get("__type")), data


def _str(v: Any) -> str | None:
    return None if v is None else str(v)


def is_context_overflow(message: str, code: str | None = None) -> bool:
    low = f"{code or ''} {message}".lower()
    return any(p in low for p in _CONTEXT_PATTERNS)


def classify_http_error(status: int, headers: Mapping[str, str], body: bytes, target: Target) -> ProviderError:
    """A typed error from an HTTP failure, for the common JSON shapes of every provider."""
    message, code, _ = error_message(body)
    pid, model = target.provider.id, target.model.id
    raw = body.decode("utf-8", "replace")[:2000]
    if status in (401, 403):
        return AuthenticationError(pid, message, model=model, status=status, raw=raw)
    if status == 429:
        return RateLimitError(pid, message, retry_after=parse_retry_after(headers), model=model, status=status, raw=raw)
    if status == 404 and ("model" in message.lower() or (code or "").lower() in ("model_not_found", "not_found_error")):
        return ModelNotFound(pid, model, status=status, raw=raw)
    if status in (400, 413, 422) and is_context_overflow(message, code):
        limit = target.model.context_window if target.model.context_known else None
        return ContextWindowExceeded(pid, message, limit=limit, model=model, status=status, raw=raw)
    if status >= 500 or status in (408, 409):
        return ProviderUnavailable(pid, message, model=model, status=status, raw=raw)
    return BadRequest(pid, message, model=model, status=status, raw=raw)
