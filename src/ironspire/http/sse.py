"""Server-sent events, decoded by the WHATWG event-stream rules from text lines.

httpx-sse did this for httpx responses; the transport no longer hands out httpx responses, and
the rules are short: ``field: value`` lines (one optional space after the colon), ``data`` lines
joined with newlines, a blank line dispatches the event, lines starting with ``:`` are comments,
unknown fields are ignored, an event with no data is not dispatched, and one still pending when
the stream ends is dropped (its closing blank line never came).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Event:
    event: str  # "message" when the stream named none
    data: str
    id: str
    retry: int | None = None


class Decoder:
    """The event-stream rules over raw reads: ``feed`` takes bytes as they arrive (a line or an
    event may be split anywhere) and returns the events they completed. Synchronous, so a
    decoder above it loops over a read's events instead of awaiting a generator per line."""

    __slots__ = ("_data", "_id", "_lines", "_name", "_retry")

    def __init__(self) -> None:
        from ironspire.http import LineDecoder

        self._lines = LineDecoder()
        self._data: list[str] = []
        self._name = ""
        self._id = ""
        self._retry: int | None = None

    def feed(self, chunk: bytes) -> list[Event]:
        return self.lines(self._lines.feed(chunk))

    def lines(self, lines: list[str]) -> list[Event]:
        """The events that ``lines`` (without their endings) complete."""
        out: list[Event] = []
        for line in lines:
            if not line:
                if self._data:
                    out.append(Event(self._name or "message", "\n".join(self._data), self._id, self._retry))
                self._data, self._name, self._retry = [], "", None
                continue
            if line[0] == ":":
                continue
            field, colon, value = line.partition(":")
            if colon and value[:1] == " ":
                value = value[1:]
            if field == "data":
                self._data.append(value)
            elif field == "event":
                self._name = value
            elif field == "id":
                if "\0" not in value:
                    self._id = value
            elif field == "retry" and value.isdigit():
                self._retry = int(value)
        return out

    def flush(self) -> list[Event]:
        """At the end of the stream: the last line without its ending is read, and an event still
        pending (its closing blank line never came) is dropped, as the rules say."""
        return self.lines(self._lines.flush())


async def events(lines: AsyncIterable[str]) -> AsyncIterator[Event]:
    """The events of an event stream given as lines without their endings (Response.aiter_lines)."""
    decoder = Decoder()
    async for line in lines:
        for event in decoder.lines([line]):
            yield event
