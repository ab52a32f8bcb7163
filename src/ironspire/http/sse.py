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


async def events(lines: AsyncIterable[str]) -> AsyncIterator[Event]:
    """The events of an event stream given as lines without their endings (Response.aiter_lines)."""
    data: list[str] = []
    name = ""
    last_id = ""
    retry: int | None = None
    async for line in lines:
        if not line:
            if data:
                yield Event(name or "message", "\n".join(data), last_id, retry)
            data, name, retry = [], "", None
            continue
        if line[0] == ":":
            continue
        field, colon, value = line.partition(":")
        if colon and value[:1] == " ":
            value = value[1:]
        if field == "data":
            data.append(value)
        elif field == "event":
            name = value
        elif field == "id":
            if "\0" not in value:
                last_id = value
        elif field == "retry" and value.isdigit():
            retry = int(value)
    # at the end of the stream a pending event without its blank line is dropped, as the rules say
