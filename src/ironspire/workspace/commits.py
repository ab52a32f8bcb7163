"""Storing a finished turn: at once when nothing is in the way, else through the group commit.

A local SQLite commit that waits for nothing (``write_now``: no commit of this process under
way, no other process writing) costs less on the event loop than the trip to a thread and back,
so it is made there. Otherwise the turn goes to SQLite's group commit (``write_many``): one
thread takes every turn queued while it was busy and stores them in one transaction, each
still its own. A turn log with neither (PostgreSQL's) writes each turn on the worker threads.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

from ironspire.workspace import offloop

_writers: weakref.WeakKeyDictionary[Any, offloop.Batched] = weakref.WeakKeyDictionary()


async def store_turn(turns: Any, messages: Sequence[tuple[Any, ...]], usage: tuple[Any, ...],
                     attempts: Sequence[tuple[Any, ...]] = ()) -> int:
    """``turns.write(messages, usage, attempts)``, never waiting on the loop; the id of the last message."""
    now = getattr(turns, "write_now", None)
    if now is not None:
        done = now(messages, usage, attempts)
        if done is not None:
            return int(done)
    many = getattr(turns, "write_many", None)
    if many is None:
        last: int = await offloop.run(turns.write, messages, usage, attempts)
        return last
    writer = _writers.get(turns)
    if writer is None:
        writer = _writers.setdefault(turns, offloop.Batched(many, "ironspire-commit"))
    last = await writer.run(messages, usage, attempts)
    return last
