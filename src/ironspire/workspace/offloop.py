"""Worker threads for a turn's blocking work (the database commit, keychain reads, reloads).

Lighter than ``run_in_executor``: a job goes through a SimpleQueue to a few daemon threads and
comes back with one ``call_soon_threadsafe``; on this path the difference was ~50 µs of CPU per
turn (bench/notes.md). A job that has started always runs to its end: if the awaiting turn is
cancelled, ``run`` still waits for it before the cancellation goes on, so a write under way
lands (or fails) before the agent's lock is released and the next turn is never built beside
it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
WORKERS = 4


class _Job:
    __slots__ = ("args", "fn", "future", "loop")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], loop: asyncio.AbstractEventLoop) -> None:
        self.fn, self.args, self.loop = fn, args, loop
        self.future: asyncio.Future[Any] = loop.create_future()


_jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
_started = 0
_start_lock = threading.Lock()


def _finish(job: _Job, result: Any, error: BaseException | None) -> None:
    """On the loop: hands the outcome to the awaiting turn."""
    if not job.future.done():
        if error is None:
            job.future.set_result(result)
        else:
            job.future.set_exception(error)


def _work() -> None:
    while True:
        job = _jobs.get()
        try:
            result, error = job.fn(*job.args), None
        except BaseException as exc:  # handed to the awaiting turn, never lost in the thread
            result, error = None, exc
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            job.loop.call_soon_threadsafe(_finish, job, result, error)


def _ensure_workers() -> None:
    global _started
    if _started >= WORKERS:
        return
    with _start_lock:
        while _started < WORKERS:
            threading.Thread(target=_work, name=f"ironspire-turn-{_started}", daemon=True).start()
            _started += 1


def _after_fork() -> None:  # a forked child has none of its parent's threads
    global _jobs, _started
    _jobs, _started = queue.SimpleQueue(), 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


async def run(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a worker thread, awaited without blocking the loop."""
    _ensure_workers()
    job = _Job(fn, args, asyncio.get_running_loop())
    _jobs.put(job)
    result: T = await settled(job.future)
    return result


async def settled(outcome: asyncio.Future[Any]) -> Any:
    """``outcome``'s result, once work already handed on has settled it; a caller cancelled
    meanwhile still waits for that, so a write under way lands or fails before the turn's lock is
    released, and then its cancellation goes on."""
    try:
        return await asyncio.shield(outcome)
    except asyncio.CancelledError:
        while not outcome.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait([outcome])
        if not outcome.cancelled():
            outcome.exception()  # seen: the caller gets its cancellation
        raise


def _finish_all(outcomes: list[tuple[_Job, Any, BaseException | None]]) -> None:
    for job, result, error in outcomes:
        _finish(job, result, error)


class Batched:
    """Jobs that one call does better together: a thread of its own takes everything queued
    while it was busy and hands it to ``many`` at once, which returns one ``(result, error)``
    per job, in order.

    This is group commit for the turn log: with many turns ending at once, one transaction (one
    WAL append, one wake-up of the thread and of each loop) stores them all, instead of one
    each. A lone turn is a batch of one, costing what ``run`` does. Jobs queued before a
    caller is cancelled still run, and the caller waits for them, as with ``run``.
    """

    #: the most jobs in one call (a transaction stays short for the turns queued behind it)
    MOST = 256
    #: seconds without work after which the thread ends (the next job starts another)
    IDLE = 1.0

    def __init__(self, many: Callable[[list[tuple[Any, ...]]], list[tuple[Any, BaseException | None]]],
                 name: str) -> None:
        self._many, self._name = many, name
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._pid = 0
        self._lock = threading.Lock()

    async def run(self, *args: Any) -> Any:
        job = _Job(self._many, args, asyncio.get_running_loop())
        with self._lock:  # against the thread deciding, at the same moment, that it is idle
            if self._pid != os.getpid():  # none running, or a forked child (which has none of the parent's)
                self._jobs = queue.SimpleQueue()
                threading.Thread(target=self._work, args=(self._jobs,), name=self._name, daemon=True).start()
                self._pid = os.getpid()
            self._jobs.put(job)
        return await settled(job.future)

    def _work(self, jobs: queue.SimpleQueue[_Job]) -> None:
        while True:
            try:
                first = jobs.get(timeout=self.IDLE)
            except queue.Empty:
                with self._lock:
                    if jobs.empty():  # nothing came: end, so a closed store's thread does not linger
                        self._pid = 0
                        return
                continue
            batch = [first]
            while len(batch) < self.MOST:
                try:
                    batch.append(jobs.get_nowait())
                except queue.Empty:
                    break
            try:
                outcomes = self._many([job.args for job in batch])
            except BaseException as exc:  # handed to every caller, never lost in the thread
                outcomes = [(None, exc)] * len(batch)
            by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Job, Any, BaseException | None]]] = {}
            for job, (result, error) in zip(batch, outcomes, strict=True):
                by_loop.setdefault(job.loop, []).append((job, result, error))
            for loop, done in by_loop.items():
                with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
                    loop.call_soon_threadsafe(_finish_all, done)
