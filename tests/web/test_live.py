"""What the server pushes: health changes (from checks and from live traffic) to every listening
page, only when something changed; a turn's events replayed to a page that reconnects."""

from __future__ import annotations

import asyncio
import json

from ironspire.errors import RateLimitError
from ironspire.web.live import Turn
from web.conftest import Browser


async def _next_health(stream: object) -> dict[str, object]:
    while True:
        chunk = await stream.__anext__()  # type: ignore[attr-defined]
        if chunk.startswith(b"event: health"):
            return dict(json.loads(chunk.decode().split("data: ", 1)[1]))


async def test_listeners_get_a_snapshot_then_only_changes(web: Browser) -> None:
    feed = web.app.state.web.feed
    stream = feed.listen()
    assert await stream.__anext__() == b"retry: 2000\n\n"
    first = [await _next_health(stream) for _ in web.ws.provider_ids()]
    assert {s["provider"] for s in first} == set(web.ws.provider_ids())
    feed.publish()  # nothing changed: nothing is pushed
    # live traffic: the transport tells the monitor, then the feed, which pushes the new state
    for observer in web.ws.transport.observers:
        observer("groq", RateLimitError("groq", "slow down", retry_after=30), 0.05)
    pushed = await asyncio.wait_for(_next_health(stream), 5)
    assert (pushed["provider"], pushed["state"], pushed["dot"], pushed["label"]) == (
        "groq", "rate_limited", "yellow", "rate-limited")
    assert pushed["until"] is not None
    await stream.aclose()


async def test_a_reconnecting_page_gets_the_events_it_missed() -> None:
    turn = Turn("t1", "pal")
    for word in ("a", "b", "c"):
        turn.push("text", {"text": word})
    turn.push("done", {"message": None})
    turn.done = True
    replay = [chunk async for chunk in turn.stream(start=2)]
    assert replay[0] == b"retry: 1000\n\n"
    assert [c.split(b"\n")[0] for c in replay[1:]] == [b"id: 3", b"id: 4"]  # only what came after id 2
    assert b'event: done' in replay[-1]
