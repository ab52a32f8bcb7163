"""What only PostgreSQL does for the store: advisory locks and the ledger's monthly partitions.

Turn locks are session-level advisory locks, each held on a connection of its own for the
length of one turn. PostgreSQL ties such a lock to the backend that took it, so a worker that
dies (kill -9, a crashed host) frees its agents' locks as soon as the server notices the
connection gone: at once for a killed process (the kernel closes the socket), within the
keepalive settings below for a host that vanished. No lease to expire, no row to clean up.

The ledger (``usage``) is partitioned by month on its time column. Partitions are created ahead
(this month and the next two) when the schema is upgraded, when a workspace opens, and when a
commit crosses into a month not yet covered; a DEFAULT partition catches anything else so a
write never fails for want of one.
"""

from __future__ import annotations

import asyncio
import threading
import time
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, Connection, Engine

#: first key of every advisory lock Ironspire takes (crc32 of "ironspire"), so its locks cannot
#: collide with another application's on the same database
NAMESPACE = zlib.crc32(b"ironspire") >> 1
_MIGRATION = 0
#: months of ledger partitions kept ready ahead of now
AHEAD = 2
_DEAD_PEER = "-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3 -c timezone=UTC"


def lock_for_migration(conn: Connection) -> None:
    conn.execute(text("SELECT pg_advisory_xact_lock(:ns, :key)"), {"ns": NAMESPACE, "key": _MIGRATION})


# --- turn locks ------------------------------------------------------------------------------


class TurnLocks:
    """Per-agent locks shared by every process and host on one database.

    Waiting happens in a worker thread (the connection blocks in ``pg_advisory_lock``), never
    on the event loop. A wait that is cancelled still ends with the lock released: the thread
    finishes taking it and gives it straight back.
    """

    def __init__(self, url: URL, *, size: int = 8, overflow: int = 64) -> None:
        self.engine = create_engine(
            url, pool_size=size, max_overflow=overflow, pool_pre_ping=True,
            connect_args={"options": _DEAD_PEER, "application_name": "ironspire-turn-lock"},
        )

    @asynccontextmanager
    async def hold(self, agent_id: int) -> AsyncIterator[None]:
        conn = await asyncio.to_thread(self.engine.raw_connection)
        taken = threading.Event()
        try:
            waiter = asyncio.ensure_future(asyncio.to_thread(self._take, conn, agent_id, taken))
            try:
                await asyncio.shield(waiter)
            except BaseException:
                await _settle(waiter)
                raise
            yield
        finally:
            await asyncio.to_thread(self._give_back, conn, agent_id, taken)

    @staticmethod
    def _take(conn: Any, agent_id: int, taken: threading.Event) -> None:
        cursor = conn.cursor()
        try:
            cursor.execute("SELECT pg_advisory_lock(%s, %s)", (NAMESPACE, agent_id))
            taken.set()
        finally:
            cursor.close()
        conn.commit()  # end the implicit transaction; the session-level lock stays

    @staticmethod
    def _give_back(conn: Any, agent_id: int, taken: threading.Event) -> None:
        try:
            if taken.is_set():
                cursor = conn.cursor()
                try:
                    cursor.execute("SELECT pg_advisory_unlock(%s, %s)", (NAMESPACE, agent_id))
                finally:
                    cursor.close()
                conn.commit()
        except Exception:
            conn.invalidate()  # a connection we cannot unlock on is closed: the server frees the lock
        finally:
            conn.close()

    def dispose(self) -> None:
        self.engine.dispose()


async def _settle(waiter: asyncio.Future[None]) -> None:
    """Lets a cancelled wait's thread finish (it cannot be interrupted) before the lock is given back."""
    while not waiter.done():
        try:
            await asyncio.shield(waiter)
        except asyncio.CancelledError:
            continue
        except Exception:
            return


# --- ledger partitions -----------------------------------------------------------------------


def _month_start(moment: datetime) -> datetime:
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _next_month(moment: datetime) -> datetime:
    return moment.replace(year=moment.year + 1, month=1) if moment.month == 12 else moment.replace(
        month=moment.month + 1)


def months(start: float, end: float) -> list[datetime]:
    """First days (UTC) of every month from the one holding ``start`` to the one holding ``end``."""
    first = _month_start(datetime.fromtimestamp(start, UTC))
    last = _month_start(datetime.fromtimestamp(end, UTC))
    out = [first]
    while out[-1] < last:
        out.append(_next_month(out[-1]))
    return out


def partition_name(month: datetime) -> str:
    return f"usage_y{month.year:04d}m{month.month:02d}"


def ensure_partitions(engine: Engine | Connection, start: float | None = None, end: float | None = None) -> float:
    """Creates the monthly partitions of ``usage`` from ``start``'s month to ``end``'s (default: now
    to AHEAD months on); returns the Unix time up to which the ledger is covered.

    Rows that already sit in the DEFAULT partition for a month being created are moved into it,
    in the same transaction (PostgreSQL refuses the new partition otherwise).
    """
    now = time.time()
    wanted = months(min(now, start) if start is not None else now, max(now, end) if end is not None else now)
    for _ in range(AHEAD):
        wanted.append(_next_month(wanted[-1]))
    if isinstance(engine, Engine):
        with engine.begin() as conn:
            return _ensure(conn, wanted)
    return _ensure(engine, wanted)


def _ensure(conn: Connection, wanted: list[datetime]) -> float:
    conn.execute(text("SELECT pg_advisory_xact_lock(:ns, :key)"), {"ns": NAMESPACE, "key": 1})
    partitioned = conn.execute(text(
        "SELECT 1 FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid "
        "WHERE c.relname = 'usage' AND c.relnamespace = current_schema()::regnamespace"
    )).scalar()
    if not partitioned:
        return float("inf")
    existing = set(conn.execute(text(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'usage'"
    )).scalars())
    if "usage_default" not in existing:
        conn.execute(text("CREATE TABLE usage_default PARTITION OF usage DEFAULT"))
    for month in wanted:
        name = partition_name(month)
        if name in existing:
            continue
        bounds = {"lo": month, "hi": _next_month(month)}
        stray = conn.execute(text("SELECT count(*) FROM usage_default WHERE at >= :lo AND at < :hi"), bounds).scalar()
        if stray:
            conn.execute(text(f"CREATE TABLE {name} (LIKE usage INCLUDING DEFAULTS)"))
            conn.execute(text(f"INSERT INTO {name} SELECT * FROM usage_default WHERE at >= :lo AND at < :hi"),
                         bounds)
            conn.execute(text("DELETE FROM usage_default WHERE at >= :lo AND at < :hi"), bounds)
            conn.execute(text(
                f"ALTER TABLE usage ATTACH PARTITION {name} FOR VALUES FROM ('{month.isoformat()}') "
                f"TO ('{_next_month(month).isoformat()}')"
            ))
        else:
            conn.execute(text(
                f"CREATE TABLE {name} PARTITION OF usage FOR VALUES FROM ('{month.isoformat()}') "
                f"TO ('{_next_month(month).isoformat()}')"
            ))
    return _next_month(max(wanted)).timestamp()
