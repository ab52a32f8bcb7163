"""Storing a finished turn: through the store's group commit when its turn log has one.

A fleet ends many turns at once. SQLite's turn log takes them together (``write_many``: one
transaction, each turn in its own savepoint) from one thread of its own, so N turns ending
together cost one commit and one wake-up instead of N; a turn alone is a batch of one. A turn
log without ``write_many`` (PostgreSQL's) writes each turn on the worker threads.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

from ironspire.workspace import offloop

_writers: weakref.WeakKeyDictionary[Any, offloop.Batched] = weakref.WeakKeyDictionary()


async def store_turn(turns: Any, messages: Sequence[tuple[Any, ...]], usage: tuple[Any, ...],
                     attempts: Sequence[tuple[Any, ...]] = ()) -> int:
    """``turns.write(messages, usage, attempts)``, off the loop; the id of the last message."""
    many = getattr(turns, "write_many", None)
    if many is None:
        last: int = await offloop.run(turns.write, messages, usage, attempts)
        return last
    writer = _writers.get(turns)
    if writer is None:
        writer = _writers.setdefault(turns, offloop.Batched(many, "ironspire-commit"))
    last = await writer.run(messages, usage, attempts)
    return last
