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

if TYPE_CHECKING:
    from ironspire.http import Response


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
        line = line.strip()
        if not line:
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError:
            raise ProviderUnavailable(provider, f"malformed stream line: {line[:200]!r}") from None
