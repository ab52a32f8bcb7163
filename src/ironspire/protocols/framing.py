"""Stream framings shared by several protocols: SSE (ironspire.http.sse) and NDJSON.

Both yield already-parsed JSON payloads so decoders deal only in provider semantics. A
malformed payload becomes a ProviderUnavailable naming the provider rather than a bare
JSONDecodeError from deep inside a stream.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from ironspire.errors import ProviderUnavailable
from ironspire.http import Response
from ironspire.http.sse import Decoder
from ironspire.wire import Target

#: the largest single event (SSE data or NDJSON line); the whole stream is capped in protocols.base
MAX_EVENT_CHARS = 16 * 1024 * 1024


class SseJson:
    """(event name, JSON data) for each SSE event, skipping empty data; stops at ``[DONE]``.

    ``done`` tells afterwards whether the stream ended with ``[DONE]`` rather than by the
    connection closing: only the marker proves a finished stream on protocols whose last
    chunk may carry no finish reason (some OpenAI-compatible servers).
    """

    __slots__ = ("done", "provider", "response")

    def __init__(self, response: Response, provider: str) -> None:
        self.response, self.provider = response, provider
        self.done = False

    async def __aiter__(self) -> AsyncIterator[tuple[str, Any]]:
        # events are decoded a whole read at a time (no generator per line and per event: those
        # layers cost a few µs for every event of every stream)
        decoder = Decoder()
        async for chunk in self.response.aiter_bytes():
            for sse in decoder.feed(chunk):
                data = sse.data
                if not data:
                    continue
                if len(data) > MAX_EVENT_CHARS:
                    raise ProviderUnavailable(self.provider, f"a stream event of {len(data)} characters (the most "
                                              f"is {MAX_EVENT_CHARS}); the turn was stopped")
                if data == "[DONE]":
                    self.done = True
                    return
                try:
                    payload = json.loads(data)
                except json.JSONDecodeError:
                    raise ProviderUnavailable(self.provider, f"malformed stream event: {data[:200]!r}") from None
                yield sse.event, payload


def sse_json(response: Response, provider: str) -> SseJson:
    return SseJson(response, provider)


async def ndjson(response: Response, provider: str) -> AsyncIterator[Any]:
    """One JSON value per line; blank lines are skipped, non-JSON lines are an error."""
    async for line in response.aiter_lines():
        if len(line) > MAX_EVENT_CHARS:
            raise ProviderUnavailable(provider, f"a stream line of {len(line)} characters (the most is "
                                      f"{MAX_EVENT_CHARS}); the turn was stopped")
        line = line.strip()
        if not line:
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError:
            raise ProviderUnavailable(provider, f"malformed stream line: {line[:200]!r}") from None


#: the most bytes one streamed response may bring, and the largest single SSE/NDJSON event: past
#: them the provider is not answering a chat turn (an endless stream reached 2.6 GB before)
MAX_STREAM_BYTES = 64 * 1024 * 1024


class Capped(Response):
    """A streamed response whose body ends with a ProviderUnavailable once it passes its cap,
    before the decoders above it buffer any more. One class for every stream (a class built per
    stream cost ~20 µs of CPU each time)."""

    __slots__ = ("_inner", "_target", "headers", "most", "status_code")

    def __init__(self, response: Response, target: Target, limit: int | None = None) -> None:
        self._inner, self._target = response, target
        self.status_code, self.headers = response.status_code, response.headers
        self.most = limit or MAX_STREAM_BYTES
        self._body = None

    async def _read_whole(self) -> bytes:
        return b"".join([chunk async for chunk in self.aiter_bytes()])

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        total = 0
        async for chunk in self._inner.aiter_bytes():
            total += len(chunk)
            if total > self.most:
                raise ProviderUnavailable(self._target.provider.id, f"the response passed {self.most // 2**20} MiB; "
                                          "the turn was stopped and nothing was saved", model=self._target.model.id)
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


def capped(response: Response, target: Target, limit: int | None = None) -> Response:
    """The response with its body capped at ``limit`` bytes (default MAX_STREAM_BYTES)."""
    return Capped(response, target, limit)
