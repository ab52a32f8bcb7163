"""What is particular to SQLite: pragmas, the turn log and the turn path's reads on the standard
library's sqlite3, agent locks as files, and backup / restore with SQLite's online backup API.

The turn path (``SqliteTurns``, ``SqliteReads``, ``schema_state``) imports only ``sqlite3`` and
the precompiled SQL of ``store/sql.py``: opening an up-to-date workspace and running a turn load
neither SQLAlchemy nor Alembic. ``SqliteTurns`` keeps connections of its own, each used by one
thread at a time: the event loop's (commits that wait for nothing, and the checks), the commit
thread's (commits that wait for the database) and a reader (checks while the loop's is busy), so
a turn pays no pool checkout and a check never queues behind a write. WAL keeps readers (the
CLI's ``history``, a server's pages) from blocking a turn being committed, and lets a process
killed mid-write leave the file consistent.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ironspire.store import sql
from ironspire.store.locks import FileLock

#: a stored turn's id of its last message, or the error it could not be stored with
Outcome = tuple[int | None, BaseException | None]

#: the workspace database's file name in IRONSPIRE_HOME
DB_NAME = "ironspire.db"

PRAGMAS = ("PRAGMA journal_mode=WAL", "PRAGMA foreign_keys=ON", "PRAGMA synchronous=NORMAL",
           "PRAGMA busy_timeout=10000")


def on_connect(dbapi_connection: Any, _record: Any) -> None:
    """SQLAlchemy's connect hook: every pooled connection gets the same pragmas as the turn log."""
    cursor = dbapi_connection.cursor()
    for pragma in PRAGMAS:
        cursor.execute(pragma)
    cursor.close()


def _connect(path: Path) -> sqlite3.Connection:
    # isolation_level=None: no implicit transactions; a turn says BEGIN / COMMIT itself
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    for pragma in PRAGMAS:
        conn.execute(pragma)
    return conn


#: turns stored at once (which never checkpoint on the event loop) between two checkpoints in a
#: thread: ~1000 pages of WAL at ~10 a turn, the size SQLite's own auto-checkpoint keeps it to
CHECKPOINT_EVERY = 100


class SqliteTurns:
    """The hot path of a turn: the sync check and the one-transaction write."""

    #: the sync check is a local WAL read that never waits for a writer: cheap enough to run on
    #: the event loop (a server database's is a network round trip, and goes to a thread)
    inline_check = True

    def __init__(self, path: Path) -> None:
        self.path = path
        self._reader: sqlite3.Connection | None = None
        self._writer: sqlite3.Connection | None = None
        self._read_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._now: sqlite3.Connection | None = None
        self._now_lock = threading.Lock()
        self._stored_now = 0
        self._next_checkpoint = CHECKPOINT_EVERY
        self._checkpoint_lock = threading.Lock()
        self._checkpointing = False

    def check(self, agent_id: int) -> tuple[int, int | None]:
        """The configuration revision and the id of the agent's last stored message.

        On the connection that stores turns at once (``write_now``) when it is free: its page
        cache stays valid across its own commits, where another connection's is dropped at every
        change and read again from the WAL (~30 µs a turn). Either sees every commit, this
        process's and others'; the check never waits for one.
        """
        if self._now is not None and self._now_lock.acquire(blocking=False):
            try:
                row = self._now.execute(sql.SYNC_CHECK, (agent_id,)).fetchone()
            except sqlite3.OperationalError as exc:
                if not _busy(exc):  # locked (its busy timeout is 0): the reader waits as it always did
                    raise
                row = None
            finally:
                self._now_lock.release()
            if row is not None:
                return int(row[0]), row[1]
        with self._read_lock:
            if self._reader is None:
                self._reader = _connect(self.path)
            row = self._reader.execute(sql.SYNC_CHECK, (agent_id,)).fetchone()
        return int(row[0]), row[1]

    def write(self, messages: Sequence[tuple[Any, ...]], usage: tuple[Any, ...],
              attempts: Sequence[tuple[Any, ...]] = ()) -> int:
        """Messages and the ledger row in ONE transaction: all of them are stored, or none.
        ``attempts``: ledger rows of the turn's earlier requests (routes that failed before a
        fallback answered), written first. Ledger rows are ``schema.USAGE_COLUMNS +
        ROUTE_COLUMNS``; each is stored with the turn's id, its first message's. Returns the id
        of the last message written."""
        with self._write_lock:
            ((last, error),) = _store(self._connection(), [(messages, usage, attempts)])
        if error is not None:
            raise error
        assert last is not None
        return last

    def write_now(self, turns: Sequence[tuple[Any, ...]]) -> list[Outcome] | None:
        """``write_many`` on the calling thread (the event loop's), if it can be done without
        waiting: None, with nothing written, when the turns must go to the commit thread.

        A commit with nothing to wait for costs less on the loop than handing it to a thread and
        waking the loop again (~50 µs against ~150 across both threads, for a lone turn). It
        waits for nothing: another of this process's commits under way, or another process's
        write lock (busy timeout 0), sends the turns to the thread. Nor does it checkpoint (a
        checkpoint syncs the disk): a thread of its own does, every ``CHECKPOINT_EVERY`` turns.
        Durability is the same: one transaction, committed before any of its turns returns.
        """
        if not self._now_lock.acquire(blocking=False):
            return None
        try:
            conn = self._now
            if conn is None:
                conn = _connect(self.path)
                conn.execute("PRAGMA busy_timeout=0")
                conn.execute("PRAGMA wal_autocheckpoint=0")
                self._now = conn
            try:
                outcomes = _store(conn, turns)
            except Exception as exc:
                if _busy(exc):  # another writer holds the database: the commit thread waits for it
                    return None
                return [(None, exc)] * len(turns)
        finally:
            self._now_lock.release()
        self._stored_now += len(turns)
        if self._stored_now >= self._next_checkpoint:
            self._next_checkpoint = self._stored_now + CHECKPOINT_EVERY
            self._start_checkpoint()
        return outcomes

    def _start_checkpoint(self) -> None:
        with self._checkpoint_lock:
            if self._checkpointing:
                return
            self._checkpointing = True
        threading.Thread(target=self._checkpoint, name="ironspire-checkpoint", daemon=True).start()

    def _checkpoint(self) -> None:
        """A PASSIVE checkpoint in a thread of its own, holding both of this process's writers:
        turns meanwhile queue for the commit thread, off the loop. With nothing appended while it
        runs, it reaches the WAL's end, and the next commit starts the WAL over from its
        beginning (a frame appended meanwhile would keep it growing)."""
        try:
            with self._write_lock, self._now_lock:
                if self._now is not None:
                    self._now.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error:
            pass  # the next one tries again; the WAL only grows until then
        finally:
            with self._checkpoint_lock:
                self._checkpointing = False

    def write_many(self, turns: Sequence[tuple[Any, ...]]) -> list[Outcome]:
        """Several turns' ``write`` arguments in one transaction (group commit), waiting for the
        database if another process holds it. A turn that cannot be stored fails alone with its
        error while the others commit; a failed commit fails them all, and stores none."""
        with self._write_lock:
            try:
                return _store(self._connection(), turns)
            except Exception as exc:
                return [(None, exc)] * len(turns)

    def _connection(self) -> sqlite3.Connection:
        if self._writer is None:
            self._writer = _connect(self.path)
        return self._writer

    def close(self) -> None:
        with self._read_lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None
        with self._write_lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
        with self._now_lock:
            if self._now is not None:
                self._now.close()
                self._now = None


def _busy(exc: BaseException) -> bool:
    """SQLite said another connection holds the lock (what a busy timeout would wait out)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, sqlite3.OperationalError) and code is not None and code & 0xFF in (
        sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


@functools.lru_cache(maxsize=512)
def _rows(statement: str, count: int) -> str:
    """A one-row ``INSERT ... VALUES (?, ...)`` of ``store/sql.py`` made to insert ``count`` rows
    (kept: every turn asks for the same few)."""
    head, group = statement.split(" VALUES ")
    return f"{head} VALUES {', '.join([group] * count)}"


def _insert_rows(conn: sqlite3.Connection, statement: str, rows: Sequence[tuple[Any, ...]]) -> list[int]:
    """``rows`` in as few statements as SQLite's parameter limit allows; their ids, in order.

    Fewer statements is what makes a batch fast under a fleet: sqlite3 gives up the GIL around
    every statement it steps, and with the event loop busy each hand-back costs a wait. The
    tables' ids are AUTOINCREMENT and the transaction holds the write lock, so the rows of one
    statement get consecutive ids ending at ``lastrowid``.
    """
    if not rows:
        return []
    per = max(conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // len(rows[0]), 1)
    ids: list[int] = []
    for start in range(0, len(rows), per):
        chunk = rows[start:start + per]
        last = conn.execute(_rows(statement, len(chunk)), [v for row in chunk for v in row]).lastrowid
        assert last is not None
        ids.extend(range(last - len(chunk) + 1, last + 1))
    return ids


def _insert_all(conn: sqlite3.Connection, turns: Sequence[tuple[Any, ...]]) -> list[int]:
    """The turns' messages, then their ledger rows (each turn's earlier attempts first), each
    row given its turn's id (``schema.usage.c.turn``: the id of the turn's first message, its
    user's, known here once the messages are in, so the link costs no statement); the id of
    each turn's last message (0 for a turn without any)."""
    messages = [row for turn in turns for row in turn[0]]
    ids = iter(_insert_rows(conn, sql.INSERT_MESSAGE, messages))
    lasts = []
    ledger: list[tuple[Any, ...]] = []
    for turn in turns:
        first: int | None = None
        last = 0
        for _ in turn[0]:
            last = next(ids)
            if first is None:
                first = last
        lasts.append(last)
        ledger.extend((*row, first) for row in (*(turn[2] if len(turn) > 2 else ()), turn[1]))
    _insert_rows(conn, sql.INSERT_TURN_USAGE, ledger)
    return lasts


def _store(conn: sqlite3.Connection, turns: Sequence[tuple[Any, ...]]) -> list[Outcome]:
    """``turns`` in one transaction: a few statements for them all or, when one of them cannot
    be stored, each again in its own savepoint, so it fails alone with its error. Raises, rolled
    back, when the transaction itself fails (the database locked, the commit), or with a lone
    turn's own error (redoing it alone would only fail again)."""
    try:
        conn.execute("BEGIN IMMEDIATE")  # wait for another process's writer once, not per turn
        try:
            outcomes: list[Outcome] = [(last, None) for last in _insert_all(conn, turns)]
        except Exception as exc:
            # locked, or SQLite undid it all (a full disk): fails them all; a lone turn has its error
            if _busy(exc) or not conn.in_transaction or len(turns) == 1:
                raise
            conn.execute("ROLLBACK")
            conn.execute("BEGIN IMMEDIATE")
            outcomes = [_insert_alone(conn, args) for args in turns]
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return outcomes


def _insert_alone(conn: sqlite3.Connection, turn: tuple[Any, ...]) -> Outcome:
    """One turn of a batch inside its own savepoint: undone alone, with its error, if it fails."""
    conn.execute("SAVEPOINT turn")
    try:
        outcome: Outcome = (_insert_all(conn, [turn])[0], None)
    except Exception as exc:
        if not conn.in_transaction:  # SQLite undid the whole transaction (a full disk): no turn of it is stored
            raise
        conn.execute("ROLLBACK TO turn")
        outcome = (None, exc)
    conn.execute("RELEASE turn")
    return outcome


class SqliteReads:
    """The reads of opening a workspace and preparing a turn (configuration, agents, history,
    spend) as ``store/sql.py``'s text over sqlite3, and the health transitions a check records.

    Connections are kept in a small pool, one per thread that reads at the same time, so a long
    history read in a server's thread never holds up another page (nor the turn's own check,
    which has its connection in ``SqliteTurns``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._idle: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = _connect(self.path)
        try:
            yield conn
        finally:
            if conn.in_transaction:  # a failed statement inside snapshot(): never pooled mid-transaction
                conn.execute("ROLLBACK")
            with self._lock:
                self._idle.append(conn)

    def rows(self, statement: str, params: Mapping[str, Any] | None = None) -> list[Any]:
        with self._connection() as conn:
            return conn.execute(statement, params or {}).fetchall()

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """One read transaction: every statement run on the connection sees the same state."""
        with self._connection() as conn:
            conn.execute("BEGIN")
            yield conn
            conn.execute("COMMIT")

    def write(self, statement: str, params: Mapping[str, Any]) -> None:
        """One statement in its own transaction (autocommit)."""
        with self._connection() as conn:
            conn.execute(statement, params)

    def close(self) -> None:
        """Closes the idle connections; a connection in use goes back to the pool when its read ends."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def schema_state(path: Path) -> tuple[set[str], str | None]:
    """The tables of the database at ``path`` and its Alembic revision (None: never migrated),
    read with sqlite3 so that an up-to-date workspace opens without SQLAlchemy or Alembic; a
    missing file has neither. sqlite3.DatabaseError if the file is damaged."""
    if not path.exists():
        return set(), None
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        names = {str(row[0]) for row in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        revision = None
        if "alembic_version" in names:
            row = con.execute("SELECT version_num FROM alembic_version").fetchone()
            revision = None if row is None or row[0] is None else str(row[0])
    finally:
        con.close()
    return names, revision


def agent_lock(path: Path, agent_id: int) -> FileLock:
    return FileLock(f"{_locks_dir(path)}{os.sep}agent-{agent_id}.lock")


@functools.lru_cache(maxsize=64)
def _locks_dir(path: Path) -> str:
    """``marker(path)`` as text, worked out once: an agent's first turn makes its lock from it."""
    return str(marker(path))


def backup(path: Path, dest: Path) -> None:
    """A consistent copy of the live database, WAL content included, as a single file."""
    source = sqlite3.connect(path)
    target = sqlite3.connect(dest)
    try:
        with target:
            source.backup(target)
        target.execute("PRAGMA journal_mode=DELETE")
    finally:
        target.close()
        source.close()


HEADER = b"SQLite format 3\x00"
#: the tables every Ironspire database has (a SQLite file without them is someone else's)
TABLES = frozenset({"alembic_version", "agents", "messages", "settings", "revision", "usage", "providers",
                    "provider_settings", "custom_endpoints"})


def is_sqlite(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(16) == HEADER


def is_backup(path: Path) -> bool:
    return is_sqlite(path)


def missing_tables(path: Path) -> set[str]:
    """The Ironspire tables the database at ``path`` lacks (read-only; sqlite3.DatabaseError if damaged)."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        names = {str(row[0]) for row in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        con.close()
    return set(TABLES - names)


def backup_counts(path: Path) -> dict[str, int]:
    """Live agents and stored messages of a backup (read-only)."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {"agents": int(con.execute("SELECT count(*) FROM agents WHERE deleted_at = 0").fetchone()[0]),
                "messages": int(con.execute("SELECT count(*) FROM messages").fetchone()[0])}
    finally:
        con.close()


def marker(path: Path) -> Path:
    """A directory made beside the database when it is first opened (it holds the agent locks):
    its presence says a workspace existed here, so a missing database is reported, not recreated."""
    return path.with_name(path.name + ".locks")


def integrity(path: Path, *, read_only: bool = False) -> str:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True) if read_only else sqlite3.connect(path)
    try:
        return str(con.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        con.close()


def restore(path: Path, source_path: Path) -> None:
    """Replaces the live database's content with a backup's (online backup API, one step)."""
    source = sqlite3.connect(f"file:{source_path}?mode=ro", uri=True)
    try:
        target = sqlite3.connect(path)
        try:
            source.backup(target)
        finally:
            target.close()
    finally:
        source.close()
