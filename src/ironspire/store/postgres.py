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
import contextlib
import threading
import time
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.sql.expression import Executable, Insert

from ironspire.store import schema

#: first keys of the advisory locks Ironspire takes, so they cannot collide with another
#: application's on the same database: one space for agents' turns (second key: the agent id),
#: one for schema work (second key: what is being changed)
NAMESPACE = zlib.crc32(b"ironspire turns") >> 1
SCHEMA_NAMESPACE = zlib.crc32(b"ironspire schema") >> 1
_MIGRATION, _PARTITIONS = 0, 1
#: months of ledger partitions kept ready ahead of now
AHEAD = 2
_DEAD_PEER = "-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3 -c timezone=UTC"


def lock_for_migration(conn: Connection) -> None:
    conn.execute(text("SELECT pg_advisory_xact_lock(:ns, :key)"), {"ns": SCHEMA_NAMESPACE, "key": _MIGRATION})


# --- turn locks ------------------------------------------------------------------------------


def lock_engine(url: URL, *, size: int = 4, overflow: int = 64) -> Engine:
    """The pool turn locks are held on: one connection per turn in flight, apart from the pool
    the queries use, so a long turn never starves them."""
    return create_engine(
        url, pool_size=size, max_overflow=overflow, pool_pre_ping=True,
        connect_args={"options": _DEAD_PEER, "application_name": "ironspire-turn-lock"},
    )


class AdvisoryLock:
    """One agent's turn lock, shared by every process and host on the database (the same
    interface as the SQLite store's file lock: ``await acquire()``, ``release()``, ``close()``).

    The wait happens in a worker thread, blocked in ``pg_advisory_lock``; a cancelled wait
    cancels that query on the server (psycopg's ``cancel``), so no thread is left behind to take
    the lock later, and a lock taken in the meantime is given straight back.
    """

    def __init__(self, engine: Engine, agent_id: int) -> None:
        self.engine, self.agent_id = engine, agent_id
        self._conn: Any = None

    def create(self) -> None:
        """Nothing to make: an advisory lock exists only while it is held."""

    def remove(self) -> None:
        """Nothing to remove (see ``create``)."""

    async def acquire(self) -> None:
        conn = await asyncio.to_thread(self.engine.raw_connection)
        taken = threading.Event()
        waiter = asyncio.ensure_future(asyncio.to_thread(self._take, conn, taken))
        try:
            await asyncio.shield(waiter)
        except BaseException:
            with contextlib.suppress(Exception):
                conn.driver_connection.cancel()  # type: ignore[union-attr]
            await _settle(waiter)
            await asyncio.to_thread(self._give_back, conn, taken)
            raise
        self._conn = conn

    def _take(self, conn: Any, taken: threading.Event) -> None:
        cursor = conn.cursor()
        try:
            cursor.execute("SELECT pg_advisory_lock(%s, %s)", (NAMESPACE, self.agent_id))
            taken.set()
        finally:
            cursor.close()
            conn.rollback()  # end the implicit transaction (or a cancelled one); the lock stays

    def _give_back(self, conn: Any, taken: threading.Event | None = None) -> None:
        try:
            if taken is None or taken.is_set():
                cursor = conn.cursor()
                try:
                    cursor.execute("SELECT pg_advisory_unlock(%s, %s)", (NAMESPACE, self.agent_id))
                finally:
                    cursor.close()
                conn.commit()
        except Exception:
            conn.invalidate()  # a connection we cannot unlock on is closed: the server frees the lock
        finally:
            conn.close()

    def release(self) -> None:
        """Gives the lock back (one round trip; the caller is ending its turn)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            self._give_back(conn)

    def close(self) -> None:
        self.release()


async def _settle(waiter: asyncio.Future[None]) -> None:
    """Waits for a cancelled wait's thread to finish, whatever it ended with."""
    while not waiter.done():
        try:
            await asyncio.shield(waiter)
        except asyncio.CancelledError:
            continue
        except Exception:
            return
    if not waiter.cancelled():
        waiter.exception()  # retrieved, so asyncio does not report it as never retrieved


# --- the turn path ---------------------------------------------------------------------------


#: a ledger row as the agent gives it: every column of the turn's insert but ``turn``
_ROW = schema.TURN_USAGE_COLUMNS[:-1]


class PostgresTurns:
    """The turn's sync check and one-transaction write on PostgreSQL (``store.sqlite.SqliteTurns``'
    counterpart): the same Core statements (``store/statements.py``), run through SQLAlchemy so
    the column types convert times and bodies; a commit that enters a month the ledger has no
    partition for yet creates the partitions first."""

    #: the sync check is a round trip to the server: never on the event loop
    inline_check = False

    def __init__(self, engine: Engine) -> None:
        from ironspire.store import statements

        self.engine = engine
        self._check = cast(Executable, statements.sync_check())
        self._message = cast(Insert, statements.insert_message()).returning(
            schema.messages.c.id, sort_by_parameter_order=True)
        self._usage = cast(Executable, statements.insert_turn_usage())
        self._covered_until = 0.0

    def check(self, agent_id: int) -> tuple[int, int | None]:
        with self.engine.connect() as conn:
            row = conn.execute(self._check, {"agent_id": agent_id}).one()
        return int(row[0]), None if row[1] is None else int(row[1])

    def write(self, messages: Sequence[tuple[Any, ...]], usage: tuple[Any, ...],
              attempts: Sequence[tuple[Any, ...]] = ()) -> int:
        """As ``SqliteTurns.write``: the messages, the ledger rows of the turn's earlier requests
        (``attempts``) and its last row, in one transaction; each ledger row gets the turn's id
        (its first message's, which the messages' INSERT ... RETURNING hands back)."""
        rows = []
        for row in (*attempts, usage):
            values = dict(zip(_ROW, row, strict=True))
            values["streamed"] = bool(values["streamed"])
            rows.append(values)
        if max(r["at"] for r in rows) >= self._covered_until:
            self._covered_until = ensure_partitions(self.engine)
        with self.engine.begin() as conn:
            last, turn = 0, None
            if messages:
                ids = conn.execute(self._message, [dict(zip(schema.MESSAGE_COLUMNS, m, strict=True))
                                                   for m in messages]).scalars().all()
                last, turn = int(ids[-1]), int(ids[0])
            for values in rows:
                values["turn"] = turn
                conn.execute(self._usage, values)
        return last

    def close(self) -> None:
        pass


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
    conn.execute(text("SELECT pg_advisory_xact_lock(:ns, :key)"), {"ns": SCHEMA_NAMESPACE, "key": _PARTITIONS})
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
