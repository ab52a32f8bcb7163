"""What the server pushes: provider health as it changes, and the events of turns in flight.

Health reaches the browser from three sources, all through ``HealthFeed.publish``: checks the
app runs (tab opened, refresh icon, Check all, the periodic re-check while a page listens), and
live traffic, which the transport reports to the monitor and then to ``observe`` here; so a 429
in a chat turns that provider's card yellow at once. Only changes are pushed.

A turn runs as a task of its own, not inside the request that started it: the browser opens the
event stream separately, may reconnect, and can stop the turn with a second request. Stopping
cancels the task, which is exactly what Ctrl-C does to a CLI turn (history unchanged, the user's
message kept as unanswered).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ironspire.views import HealthView
    from ironspire.workspace import Agent, Workspace

log = logging.getLogger(__name__)
KEEPALIVE_S = 15.0


def sse(event: str, data: Any, *, event_id: int | None = None) -> bytes:
    """One server-sent event; the data is JSON on one line (JSON never needs a raw newline)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def shown(h: HealthView) -> dict[str, Any]:
    """A health record with the dot colour and words the page shows (the view layer decides
    those, so the script does not)."""
    return {**h.to_json(), "dot": h.dot, "label": h.label, "shown_latency_ms": h.shown_latency_ms,
            "checked": h.checked}


def _same(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """What makes two records the same news: a provider never checked (or disabled) is stamped
    with the moment it was asked about, which is no change at all."""
    if record is None or record["checked"]:
        return record
    return {**record, "checked_at": None}


class HealthFeed:
    """Fans provider health out to every listening page; pushes only what changed."""

    def __init__(self, ws: Workspace, wanted: Callable[[], Iterable[str]]) -> None:
        self.ws = ws
        self.wanted = wanted
        self._queues: set[asyncio.Queue[dict[str, Any]]] = set()
        self._last: dict[str, dict[str, Any]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._checking: asyncio.Task[Any] | None = None

    # --- publishing ------------------------------------------------------------------------

    def snapshot(self) -> dict[str, dict[str, Any]]:
        from ironspire import views

        return {h.provider: shown(h) for h in views.health(self.ws)}

    def publish(self) -> None:
        """Pushes every status that differs from what listeners were last told."""
        current = self.snapshot()
        changed = [s for pid, s in current.items() if _same(self._last.get(pid)) != _same(s)]
        self._last = current
        for status in changed:
            for q in list(self._queues):
                with contextlib.suppress(asyncio.QueueFull):
                    q.put_nowait(status)

    def observe(self, pid: str, error: Any, latency: float) -> None:
        """Transport observer, registered after the monitor's own: the state is already updated."""
        if self._loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self.publish()
        else:
            self._loop.call_soon_threadsafe(self.publish)

    async def check(self, ids: Iterable[str] | None = None) -> dict[str, Any]:
        """Checks now (default: the configured providers) and pushes the results."""
        wanted = list(self.wanted() if ids is None else ids)
        results = await self.ws.health.check(wanted) if wanted else {}
        self.publish()
        return results

    def check_soon(self, ids: Iterable[str] | None = None) -> None:
        """A check in the background (the tab opened): the page renders at once, dots follow."""
        if self._checking is not None and not self._checking.done():
            return
        self._checking = asyncio.get_running_loop().create_task(self.check(ids), name="ironspire-web-check")

    # --- lifecycle -------------------------------------------------------------------------

    def start(self, interval: Callable[[], float]) -> None:
        self._loop = asyncio.get_running_loop()
        self._last = self.snapshot()
        self.ws.transport.observers.append(self.observe)
        self._task = self._loop.create_task(self._periodic(interval), name="ironspire-web-health")

    async def stop(self) -> None:
        with contextlib.suppress(ValueError):
            self.ws.transport.observers.remove(self.observe)
        for task in (self._task, self._checking):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _periodic(self, interval: Callable[[], float]) -> None:
        """Re-checks while at least one page listens; otherwise only notices rate limits lifting."""
        last_check = time.monotonic()
        while True:
            await asyncio.sleep(1.0)
            try:
                if self._queues and time.monotonic() - last_check >= interval():
                    last_check = time.monotonic()
                    await self.check()
                else:
                    self.publish()
            except Exception:
                log.exception("periodic health check failed")

    # --- listening -------------------------------------------------------------------------

    async def listen(self) -> AsyncIterator[bytes]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=1000)
        self._queues.add(queue)
        try:
            yield b"retry: 2000\n\n"
            for status in self.snapshot().values():
                yield sse("health", status)
            while True:
                try:
                    status = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                yield sse("health", status)
        finally:
            self._queues.discard(queue)


@dataclass
class Turn:
    """One reply in flight (or just finished): its events so far, for the stream to replay."""

    id: str
    agent: str
    events: list[tuple[str, Any]] = field(default_factory=list)
    done: bool = False
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    finished_at: float | None = None

    def push(self, event: str, data: Any) -> None:
        self.events.append((event, data))
        self.changed.set()

    async def stream(self, start: int = 0) -> AsyncIterator[bytes]:
        index = start
        yield b"retry: 1000\n\n"
        while True:
            while index < len(self.events):
                name, data = self.events[index]
                index += 1
                yield sse(name, data, event_id=index)
            if self.done:
                return
            self.changed.clear()
            if index < len(self.events):
                continue
            try:
                await asyncio.wait_for(self.changed.wait(), KEEPALIVE_S)
            except TimeoutError:
                yield b": keep-alive\n\n"


EventRenderer = Callable[[Any], "tuple[str, Any] | None"]
Finisher = Callable[["Agent", "Turn", "BaseException | None"], None]


class Turns:
    """Turns in flight, by id. Finished turns are kept briefly so a reconnecting page catches up."""

    KEEP_S = 300.0

    def __init__(self) -> None:
        self._turns: dict[str, Turn] = {}
        self._counter = itertools.count(1)

    def get(self, turn_id: str) -> Turn | None:
        return self._turns.get(turn_id)

    def running(self, agent: str) -> Turn | None:
        return next((t for t in self._turns.values() if t.agent == agent and not t.done), None)

    def start(self, agent: Agent, text: str, render: EventRenderer, finish: Finisher) -> Turn:
        self._forget_old()
        turn = Turn(f"{next(self._counter)}-{secrets.token_hex(6)}", agent.name)
        self._turns[turn.id] = turn

        async def run() -> None:
            error: BaseException | None = None
            try:
                async for event in agent.stream(text):
                    rendered = render(event)
                    if rendered is not None:
                        turn.push(*rendered)
            except asyncio.CancelledError as exc:
                error = exc
            except Exception as exc:
                error = exc
            finally:
                try:
                    finish(agent, turn, error)
                finally:
                    turn.done = True
                    turn.finished_at = time.monotonic()
                    turn.changed.set()

        turn.task = asyncio.get_running_loop().create_task(run(), name=f"ironspire-turn-{turn.id}")
        return turn

    async def stop(self, turn: Turn) -> None:
        task = turn.task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def stop_all(self) -> None:
        for turn in list(self._turns.values()):
            await self.stop(turn)

    def _forget_old(self) -> None:
        now = time.monotonic()
        for tid, t in list(self._turns.items()):
            if t.done and t.finished_at is not None and now - t.finished_at > self.KEEP_S:
                del self._turns[tid]
