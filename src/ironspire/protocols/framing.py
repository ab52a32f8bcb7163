"""Stream framings shared by several protocols: SSE (ironspire.http.sse) and NDJSON.

Both yield already-parsed JSON payloads so decoders deal only in provider semantics. A
malformed payload becomes a ProviderUnavailable naming the provider rather than a bare
JSONDecodeError from deep inside a stream.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from ironspire.errors import ProviderUnavailable
from ironspire.http.sse import events
from ironspire.wire import Target

if TYPE_CHECKING:
    from ironspire.http import Response

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
        async for sse in events(self.response.aiter_lines()):
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


def capped(response: Response, target: Target, limit: int | None = None) -> Response:
    """The response with its body ended by a ProviderUnavailable once it passes MAX_STREAM_BYTES,
    before the line decoders above it buffer any more."""
    from ironspire.http import Response as Base

    class Capped(Base):
        status_code = response.status_code
        headers = response.headers
        most = limit or MAX_STREAM_BYTES
        _body: bytes | None = None

        async def _read_whole(self) -> bytes:
            return b"".join([chunk async for chunk in self.aiter_bytes()])

        async def aiter_bytes(self) -> AsyncIterator[bytes]:
            total = 0
            async for chunk in response.aiter_bytes():
                total += len(chunk)
                if total > self.most:
                    raise ProviderUnavailable(target.provider.id, f"the response passed {self.most // 2**20} MiB; "
                                              "the turn was stopped and nothing was saved", model=target.model.id)
                yield chunk

        async def aclose(self) -> None:
            await response.aclose()

    return Capped()
