"""Storing a finished turn: together with the turns that end beside it, never waiting on the loop.

Turns that end in the same pass of the event loop are stored in one transaction, made on the
loop at its next pass (``write_now``) when nothing is in the way: no commit of this process
under way, no other process writing. That costs the loop less than a trip to a thread and back,
and a fleet whose turns end together pays one commit for many. A turn its caller knows is alone
(the only one of its workspace in flight: a CLI command, one chat) has nobody to wait a pass
for, so it is written at once, the same way (a future and two passes of the loop less: ~6% of
a sequential turn's instructions, counted with callgrind). When something is in the way,
the turns go to SQLite's group commit (``write_many``): one thread takes every turn queued while
it was busy and waits for the database off the loop. Either way each turn is still its own: it
fails alone when it cannot be stored. A turn log with neither (PostgreSQL's) writes each turn
on the worker threads.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Sequence
from typing import Any

from ironspire.workspace import offloop

_Batch = list[tuple[tuple[Any, ...], "asyncio.Future[Any]"]]

_writers: weakref.WeakKeyDictionary[Any, offloop.Batched] = weakref.WeakKeyDictionary()
#: the turns waiting for the next pass's commit, per loop and turn log (a loop closed before
#: that pass takes its batch with it: nothing of it was stored, and its turns were cancelled)
_pending: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, _Batch]] = weakref.WeakKeyDictionary()
#: what a pending turn learns when the database was not free: go to the commit thread
_BUSY = object()


async def store_turn(turns: Any, messages: Sequence[tuple[Any, ...]], usage: tuple[Any, ...],
                     attempts: Sequence[tuple[Any, ...]] = (), *, alone: bool = False) -> int:
    """``turns.write(messages, usage, attempts)``, never waiting on the loop; the id of the last message.

    ``alone``: no other turn can end beside this one (the caller holds the only turn in flight),
    so there is no batch worth a pass of the loop to gather.
    """
    args = (messages, usage, attempts)
    now = getattr(turns, "write_now", None)
    if now is not None and alone:
        outcomes = now([args])
        if outcomes is not None:
            last, error = outcomes[0]
            if error is not None:
                raise error
            return int(last)
    elif now is not None:
        loop = asyncio.get_running_loop()
        waiting = _pending.get(loop)
        if waiting is None:
            waiting = _pending[loop] = {}
        batch = waiting.get(id(turns))
        if batch is None:
            batch = waiting[id(turns)] = []
            loop.call_soon(_commit_now, waiting, turns, batch)
        done: asyncio.Future[Any] = loop.create_future()
        batch.append((args, done))
        last = await offloop.settled(done)
        if last is not _BUSY:
            return int(last)
    many = getattr(turns, "write_many", None)
    if many is None:
        stored: int = await offloop.run(turns.write, *args)
        return stored
    writer = _writers.get(turns)
    if writer is None:
        writer = _writers.setdefault(turns, offloop.Batched(many, "ironspire-commit"))
    stored = await writer.run(*args)
    return stored


def _commit_now(waiting: dict[int, _Batch], turns: Any, batch: _Batch) -> None:
    """On the loop, one pass after the first of these turns ended: all of them in one commit."""
    if waiting.get(id(turns)) is batch:
        del waiting[id(turns)]
    interrupted: BaseException | None = None
    try:
        outcomes = turns.write_now([args for args, _ in batch])
    except BaseException as exc:  # KeyboardInterrupt in the middle: none of them is stored
        outcomes = [(None, exc)] * len(batch)
        interrupted = None if isinstance(exc, Exception) else exc
    for i, (_, done) in enumerate(batch):
        if done.done():
            continue
        if outcomes is None:
            done.set_result(_BUSY)
            continue
        last, error = outcomes[i]
        if error is None:
            done.set_result(last)
        else:
            done.set_exception(error)
    if interrupted is not None:
        raise interrupted
