"""Stream framings shared by several protocols: SSE (via httpx-sse) and NDJSON.

Both yield already-parsed JSON payloads so decoders deal only in provider semantics. A
malformed payload becomes a ProviderUnavailable naming the provider rather than a bare
JSONDecodeError from deep inside a stream.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
from httpx_sse import EventSource

from ironspire.errors import ProviderUnavailable
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

    def __init__(self, response: httpx.Response, provider: str) -> None:
        self.response, self.provider = response, provider
        self.done = False

    async def __aiter__(self) -> AsyncIterator[tuple[str, Any]]:
        source = EventSource(self.response)
        async for sse in source.aiter_sse():
            data = sse.data
            if not data:
                continue
            if len(data) > MAX_EVENT_CHARS:
                raise ProviderUnavailable(self.provider, f"a stream event of {len(data)} characters (the most is "
                                          f"{MAX_EVENT_CHARS}); the turn was stopped")
            if data == "[DONE]":
                self.done = True
                return
            try:
                payload = json.loads(data)
            except json.JSONDecodeError:
                raise ProviderUnavailable(self.provider, f"malformed stream event: {data[:200]!r}") from None
            yield sse.event, payload


def sse_json(response: httpx.Response, provider: str) -> SseJson:
    return SseJson(response, provider)


async def ndjson(response: httpx.Response, provider: str) -> AsyncIterator[Any]:
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


class CappedStream(httpx.AsyncByteStream):
    """The response's byte stream, ended with a ProviderUnavailable once it passes
    MAX_STREAM_BYTES, before the line decoders above it buffer any more."""

    def __init__(self, inner: Any, target: Target, limit: int | None = None) -> None:
        self.inner, self.target, self.limit = inner, target, limit or MAX_STREAM_BYTES

    async def __aiter__(self) -> AsyncIterator[bytes]:
        total = 0
        async for chunk in self.inner:
            total += len(chunk)
            if total > self.limit:
                raise ProviderUnavailable(self.target.provider.id, f"the response passed {self.limit // 2**20} MiB; "
                                          "the turn was stopped and nothing was saved", model=self.target.model.id)
            yield chunk

    async def aclose(self) -> None:
        await self.inner.aclose()
