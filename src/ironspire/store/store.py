"""The store: every SQL statement Ironspire runs, behind one object chosen by a database URL.

``Store.open(url)`` migrates the database to head and returns the store. Configuration writes
(settings, providers, custom endpoints, agents) each run in one transaction that also bumps the
configuration revision, so another process sees with one cheap read (``turns.check``) that what
it holds is stale and reloads it (``load_config``). The turn path (``turns``: the check and the
one-transaction write) and the agent locks are the engine's own; everything else is SQLAlchemy
Core, the same for every engine (PostgreSQL's hooks are in ``store/postgres.py``).

On SQLite, opening an up-to-date database and what a turn reads (the configuration, the agent,
its history, the spend a budget counts) run on the standard library's sqlite3 with the text
``store/sql.py`` holds, generated from the Core definitions in ``store/statements.py``:
SQLAlchemy (and Alembic, only for a migration) loads with the first statement that needs it,
through ``Store.engine``. PostgreSQL runs the same definitions through SQLAlchemy.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ironspire.errors import ConfigurationError
from ironspire.paths import DIR_MODE, private
from ironspire.store import migrations, sql
from ironspire.store import sqlite as engine_sqlite
from ironspire.store.engines import ENV
from ironspire.store.sqlite import DB_NAME

if TYPE_CHECKING:  # each loads where it is first needed: opening SQLite and a turn need none of them
    from sqlalchemy import Connection
    from sqlalchemy.engine import Engine
    from sqlalchemy.sql.expression import ColumnElement

    from ironspire.store.ledger import Ledger, UsageFilter

URL_ENV = ENV


def __getattr__(name: str) -> Any:
    """``UsageFilter``, importable from here as before, without loading the ledger's queries
    (and SQLAlchemy) with the store."""
    if name == "UsageFilter":
        from ironspire.store.ledger import UsageFilter

        return UsageFilter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def default_url(home: Path) -> str:
    return f"sqlite:///{home / DB_NAME}"


@dataclass(frozen=True, slots=True)
class AgentRecord:
    id: int
    name: str
    system: str | None
    provider: str | None
    model: str | None
    effort: str = "high"


@dataclass(slots=True)
class Config:
    """The stored configuration as one consistent read, with the revision it was read at."""

    revision: int
    settings: dict[str, Any] = field(default_factory=dict)
    enabled: dict[str, bool] = field(default_factory=dict)
    provider_settings: dict[str, dict[str, str]] = field(default_factory=dict)
    custom_endpoints: list[dict[str, Any]] = field(default_factory=list)
    agents: list[AgentRecord] = field(default_factory=list)

    @property
    def disabled(self) -> set[str]:
        return {pid for pid, on in self.enabled.items() if not on}


RESTORE_HINT = ("Restore it from a backup with `ironspire import BACKUP` (the automatic backups kept before a "
                "restore are in the backups folder beside it), or move it away to start an empty workspace.")


def damaged(path: Path, what: str) -> ConfigurationError:
    """The error for a workspace database that cannot be used as it is: it names the file."""
    return ConfigurationError(f"the workspace database {path} {what}; nothing was changed.", hint=RESTORE_HINT)


def explain(exc: BaseException, path: Path) -> ConfigurationError | None:
    """A database failure met mid-command (a corrupt page, a table gone) as the error naming the
    file with the restore hint; None for anything that is not the database being unusable."""
    cause = getattr(exc, "orig", None) or exc
    if isinstance(cause, sqlite3.DatabaseError) and not isinstance(cause, sqlite3.IntegrityError):
        return damaged(path, f"cannot be used ({cause})")
    return None


def _check_file(path: Path) -> None:
    """Refuses, before SQLite would quietly make an empty workspace, a database that is a
    directory, zero-length, not SQLite, or missing where a workspace existed."""
    if path.is_dir():
        raise damaged(path, "is a directory, not a file")
    if path.exists():
        if path.stat().st_size == 0:
            raise damaged(path, "is empty (0 bytes): its content was lost")
        if not engine_sqlite.is_sqlite(path):
            raise damaged(path, "is not a SQLite database (overwritten or damaged)")
    elif engine_sqlite.marker(path).is_dir():
        raise damaged(path, "is missing, though a workspace was kept here")


class _Write:
    def __init__(self, conn: Connection) -> None:
        self.conn, self.revision = conn, 0


class Store:
    """Open with ``Store.open(url)``; ``close()`` releases the engine and the turn log."""

    def __init__(self, url: str) -> None:
        from ironspire.store import engines

        self.url = url
        self.turns: Any
        self._engine: Engine | None = None
        self._engine_lock = threading.Lock()
        self._ledger: Ledger | None = None
        #: SQLite: the configuration, agent and history reads on sqlite3 (None on PostgreSQL)
        self._reads: engine_sqlite.SqliteReads | None = None
        path = engines.sqlite_path(url)  # a plain SQLite URL is read without SQLAlchemy
        parsed = engines.parse(url) if path is None else None
        self.postgres = parsed is not None and engines.is_postgres(parsed)
        if parsed is not None and self.postgres:
            from ironspire.store import postgres

            self.path: Path | None = None
            self._engine = engines.open_engine(parsed)
            self.turns = postgres.PostgresTurns(self._engine)
            self._locks = postgres.lock_engine(parsed)
            return
        if path is None:
            assert parsed is not None and parsed.database is not None
            path = Path(parsed.database)
        self.path = path
        _check_file(path)
        path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)  # a new file's folder
        for own in (path, *(path.with_name(path.name + s) for s in ("-wal", "-shm"))):
            if own == path or own.exists():  # SQLite gives the WAL and shared memory the database's mode
                private(own)
        try:
            tables, current = engine_sqlite.schema_state(path)
            if current != migrations.HEAD:  # behind (or new): SQLAlchemy and Alembic migrate it
                self._engine = self._migrated(parsed or engines.parse(url))
                tables, _ = engine_sqlite.schema_state(path)
        except sqlite3.DatabaseError as exc:
            raise damaged(path, f"cannot be read ({exc})") from None
        missing = engine_sqlite.TABLES - tables
        if missing:
            self.close()
            raise damaged(path, "lacks the tables " + ", ".join(sorted(missing)))
        engine_sqlite.marker(path).mkdir(mode=DIR_MODE, exist_ok=True)
        self.turns = engine_sqlite.SqliteTurns(path)
        self._reads = engine_sqlite.SqliteReads(path)

    @staticmethod
    def _migrated(parsed: Any) -> Engine:
        """The engine on a SQLite database migrated to head; a file the driver cannot read is
        the driver's own error (sqlite3.DatabaseError), as the fast path meets it."""
        from sqlalchemy.exc import DBAPIError

        from ironspire.store import engines

        try:
            return engines.open_engine(parsed)
        except DBAPIError as exc:
            if isinstance(exc.orig, sqlite3.DatabaseError):
                raise exc.orig from None
            raise

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine: on SQLite made by the first statement that is not a turn's
        (a configuration write, the Analytics panel, a backup), with the same pragmas."""
        engine = self._engine
        if engine is None:
            with self._engine_lock:
                engine = self._engine
                if engine is None:
                    from ironspire.store import engines

                    engine = self._engine = engines.make_engine(engines.parse(self.url))
        return engine

    @property
    def ledger(self) -> Ledger:
        """The Analytics panel's queries (``store/ledger.py``), loaded with the first of them."""
        if self._ledger is None:
            from ironspire.store.ledger import Ledger

            self._ledger = Ledger(self.engine, postgres=self.postgres)
        return self._ledger

    @classmethod
    def open(cls, url: str) -> Store:
        return cls(url)

    def close(self) -> None:
        turns = getattr(self, "turns", None)
        if turns is not None:
            turns.close()
        if self._reads is not None:
            self._reads.close()
        if self._engine is not None:
            self._engine.dispose()
        if self.postgres:
            self._locks.dispose()

    def agent_lock(self, agent_id: int) -> Any:
        """The lock that serialises one agent's turns across processes and hosts: a file lock
        beside a SQLite database, an advisory lock on PostgreSQL."""
        if self.postgres:
            from ironspire.store import postgres

            return postgres.AdvisoryLock(self._locks, agent_id)
        return engine_sqlite.agent_lock(self._file(), agent_id)

    def _file(self) -> Path:
        if self.path is None:
            raise ConfigurationError(
                "this workspace is on PostgreSQL, which has no database file to copy.",
                hint="Use `ironspire db copy --from URL --to sqlite:///PATH` for a file copy, or pg_dump.",
            )
        return self.path

    def schema_revision(self) -> str | None:
        return migrations.current_revision(self.engine)

    # --- configuration -----------------------------------------------------------------------

    @contextmanager
    def _config_write(self) -> Iterator[_Write]:
        """One transaction for a configuration write and its revision bump (``write.revision``)."""
        from sqlalchemy import update

        from ironspire.store.schema import revision

        with self.engine.begin() as conn:
            write = _Write(conn)
            yield write
            write.revision = int(conn.execute(update(revision).where(revision.c.id == 1).values(
                config=revision.c.config + 1).returning(revision.c.config)).scalar_one())

    def _upsert(self, conn: Connection, table: Any, values: Mapping[str, Any], keys: Sequence[str],
                insert_only: Mapping[str, Any] | None = None) -> None:
        statement = self._insert(table).values({**values, **(insert_only or {})})
        rest = {k: v for k, v in values.items() if k not in keys}
        conn.execute(statement.on_conflict_do_update(index_elements=list(keys), set_=rest)
                     if rest else statement.on_conflict_do_nothing(index_elements=list(keys)))

    def _insert(self, table: Any) -> Any:
        """The engine's INSERT with ON CONFLICT (an upsert)."""
        if self.postgres:
            from sqlalchemy.dialects.postgresql import insert as postgres_insert

            return postgres_insert(table)
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table)

    def _rows(self, name: str, params: Mapping[str, Any] | None = None) -> list[Any]:
        """The rows of the read ``statements.READS[name]``: its text from ``store/sql.py`` on
        sqlite3 (SQLite), or the Core statement through SQLAlchemy."""
        if self._reads is not None:
            return self._reads.rows(getattr(sql, name.upper()), params)
        from ironspire.store import statements

        with self.engine.connect() as conn:
            return list(conn.execute(statements.read(name), dict(params or {})))

    def config_revision(self) -> int:
        return int(self._rows("config_revision")[0][0])

    def load_config(self) -> Config:
        if self._reads is None:
            from ironspire.store import statements

            with self.engine.begin() as conn:  # one read transaction: a consistent snapshot
                return self._config(lambda name: list(conn.execute(statements.read(name))))
        with self._reads.snapshot() as con:
            return self._config(lambda name: con.execute(getattr(sql, name.upper())).fetchall())

    @staticmethod
    def _config(read: Callable[[str], Sequence[Any]]) -> Config:
        """The configuration from ``read(name)``: the rows of each read, inside one snapshot."""
        config = Config(int(read("config_revision")[0][0]))
        for key, value in read("settings"):
            config.settings[key] = json.loads(value)
        for pid, enabled in read("providers"):
            config.enabled[pid] = bool(enabled)
        for pid, name, value in read("provider_settings"):
            config.provider_settings.setdefault(pid, {})[name] = value
        for row in read("custom_endpoints"):
            endpoint = dict(zip(sql.CUSTOM_ENDPOINT_COLUMNS, row, strict=True))
            for flag in sql.CUSTOM_ENDPOINT_FLAGS:
                endpoint[flag] = bool(endpoint[flag])
            config.custom_endpoints.append(endpoint)
        config.agents = [AgentRecord(*row) for row in read("agents")]
        return config

    def set_settings(self, values: Mapping[str, Any]) -> int:
        from ironspire.store.schema import settings

        with self._config_write() as w:
            conn = w.conn
            for key, value in values.items():
                self._upsert(conn, settings, {"key": key, "value": json.dumps(value)}, ("key",))
        return w.revision

    def set_enabled(self, pid: str, enabled: bool) -> int:
        from ironspire.store.schema import providers

        with self._config_write() as w:
            conn = w.conn
            self._upsert(conn, providers, {"id": pid, "enabled": enabled}, ("id",))
        return w.revision

    def set_provider_setting(self, pid: str, name: str, value: str | None) -> int:
        from sqlalchemy import delete

        from ironspire.store.schema import provider_settings

        with self._config_write() as w:
            conn = w.conn
            if value:
                self._upsert(conn, provider_settings, {"provider": pid, "name": name, "value": value},
                             ("provider", "name"))
            else:
                conn.execute(delete(provider_settings).where(
                    provider_settings.c.provider == pid, provider_settings.c.name == name))
        return w.revision

    def put_custom_endpoint(self, values: Mapping[str, Any]) -> int:
        from ironspire.store.schema import custom_endpoints

        with self._config_write() as w:
            conn = w.conn
            self._upsert(conn, custom_endpoints, values, ("provider_id",))
        return w.revision

    def remove_custom_endpoint(self, pid: str) -> int:
        from sqlalchemy import delete

        from ironspire.store.schema import custom_endpoints, provider_settings, providers

        with self._config_write() as w:
            conn = w.conn
            conn.execute(delete(custom_endpoints).where(custom_endpoints.c.provider_id == pid))
            conn.execute(delete(provider_settings).where(provider_settings.c.provider == pid))
            conn.execute(delete(providers).where(providers.c.id == pid))
        return w.revision

    # --- agents ------------------------------------------------------------------------------

    @staticmethod
    def _agents(conn: Connection, where: ColumnElement[bool] | None = None) -> list[AgentRecord]:
        from ironspire.store import statements

        query = statements.agent_rows()
        if where is not None:
            query = query.where(where)
        return [AgentRecord(*row) for row in conn.execute(query)]

    def agent_records(self) -> list[AgentRecord]:
        return [AgentRecord(*row) for row in self._rows("agents")]

    def agent_record(self, name: str) -> AgentRecord | None:
        found = self._rows("agent_by_name", {"name": name})
        return AgentRecord(*found[0]) if found else None

    def create_agent(self, name: str, system: str | None, provider: str | None, model: str | None,
                     effort: str = "high") -> tuple[int, int]:
        """The new agent's id and the revision; a ConfigurationError if a live agent has the name."""
        from ironspire.store.schema import agents

        with self._config_write() as w:
            conn = w.conn
            if self._agents(conn, agents.c.name == name):
                raise ConfigurationError(f"an agent named {name!r} already exists.")
            result = conn.execute(agents.insert().values(
                name=name, system=system, provider=provider, model=model, created_at=time.time(), deleted_at=0,
                effort=effort))
            key = result.inserted_primary_key
            assert key is not None
        self.agent_lock(int(key[0])).create()
        return int(key[0]), w.revision

    def update_agent(self, agent_id: int, **values: Any) -> int:
        from sqlalchemy import update

        from ironspire.store.schema import agents

        with self._config_write() as w:
            conn = w.conn
            conn.execute(update(agents).where(agents.c.id == agent_id).values(**values))
        return w.revision

    def delete_agent(self, agent_id: int) -> int:
        """Deletes the agent's history; its row stays, retired, so the ledger keeps its name."""
        from sqlalchemy import delete, update

        from ironspire.store.schema import agents, messages

        with self._config_write() as w:
            conn = w.conn
            conn.execute(delete(messages).where(messages.c.agent_id == agent_id))
            conn.execute(update(agents).where(agents.c.id == agent_id).values(deleted_at=time.time()))
        self.agent_lock(agent_id).remove()
        return w.revision

    # --- history -----------------------------------------------------------------------------

    def transcript(self, agent_id: int, *, limit: int | None = None, unanswered: bool = True
                   ) -> list[tuple[int, str, str, float]]:
        """(id, body, status, created_at) of the agent's stored messages, oldest first: all of them,
        or the newest ``limit`` (a page read from the index, not the whole history); ``unanswered``
        False leaves out the messages of failed turns."""
        name = "transcript" + ("" if unanswered else "_ok") + ("" if limit is None else "_newest")
        params: dict[str, Any] = {"agent_id": agent_id} if limit is None else {"agent_id": agent_id, "limit": limit}
        rows = [(int(i), str(b), str(s), float(t)) for i, b, s, t in self._rows(name, params)]
        return rows[::-1] if limit is not None else rows

    def message_counts(self, agent_id: int) -> dict[str, int]:
        """How many stored messages the agent has, by status ("ok", "unanswered"): one aggregate."""
        return {str(status): int(n) for status, n in self._rows("message_counts", {"agent_id": agent_id})}

    def replace_history(self, agent_id: int, entries: Iterable[tuple[str, str]]) -> None:
        """Replaces the agent's stored messages with ``(role, body)`` entries, as completed history."""
        from sqlalchemy import delete

        from ironspire.store.schema import messages

        now = time.time()
        with self.engine.begin() as conn:
            conn.execute(delete(messages).where(messages.c.agent_id == agent_id))
            rows = [{"agent_id": agent_id, "role": role, "body": body, "status": "ok", "created_at": now}
                    for role, body in entries]
            if rows:
                conn.execute(messages.insert(), rows)

    def drop_messages(self, agent_id: int, count: int | None = None) -> int:
        """Deletes the agent's ``count`` newest stored messages (all of them for None); how many went."""
        from sqlalchemy import delete, select

        from ironspire.store.schema import messages

        with self.engine.begin() as conn:
            newest = select(messages.c.id).where(messages.c.agent_id == agent_id).order_by(messages.c.id.desc())
            if count is not None:
                newest = newest.limit(count)
            ids = [int(i) for i in conn.execute(newest).scalars()]
            if ids:
                conn.execute(delete(messages).where(messages.c.id.in_(ids)))
        return len(ids)

    def counts_for(self, agent_id: int) -> int:
        """How many messages the agent has stored (a count, not a read of the history)."""
        from sqlalchemy import func, select

        from ironspire.store.schema import messages

        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(messages)
                                    .where(messages.c.agent_id == agent_id)).scalar_one())

    def counts(self) -> dict[str, int]:
        from sqlalchemy import func, select

        from ironspire.store.schema import agents, messages

        with self.engine.connect() as conn:
            return {"agents": int(conn.execute(select(func.count()).select_from(agents)
                                               .where(agents.c.deleted_at == 0)).scalar_one()),
                    "messages": int(conn.execute(select(func.count()).select_from(messages)).scalar_one())}

    # --- the ledger --------------------------------------------------------------------------

    def insert_usage(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Adds ledger rows that name their agent (``agent``: a name), as a ledger carried over
        from elsewhere does: a name no live agent has is kept under a retired agent of that name.
        A row's ``turn``, ``attempt`` and ``fallback_from`` are kept when it has them (NULL else)."""
        from ironspire.store import rollups
        from ironspire.store.schema import ROUTE_COLUMNS, TOKEN_COLUMNS, USAGE_COLUMNS, usage

        count = 0
        rows = list(rows)
        times = [float(r["at"]) for r in rows]
        if not times:
            return 0
        with self.engine.begin() as conn:
            if self.postgres:  # old rows go to their own months' partitions, not the default one
                from ironspire.store import postgres

                postgres.ensure_partitions(conn, min(times), max(times))
            rollups.invalidate(conn, min(times))  # days already rolled up are rolled up again
            ids: dict[str, int] = {}
            for row in rows:
                name = str(row["agent"])
                if name not in ids:
                    ids[name] = self._ledger_agent(conn, name)
                values = {c: row.get(c) for c in (*USAGE_COLUMNS, *ROUTE_COLUMNS, "turn") if c != "agent_id"}
                for c in (*TOKEN_COLUMNS, "latency_s"):
                    values[c] = values[c] or 0
                # an explicit None is an unknown cost and stays one; a row without the field cost 0
                values["cost_usd"] = row.get("cost_usd", 0.0)
                values["streamed"] = bool(values["streamed"])
                conn.execute(usage.insert().values(agent_id=ids[name], **values))
                count += 1
        return count

    @staticmethod
    def _ledger_agent(conn: Connection, name: str) -> int:
        from sqlalchemy import select

        from ironspire.store.schema import agents

        found = conn.execute(select(agents.c.id).where(agents.c.name == name)
                             .order_by(agents.c.deleted_at).limit(1)).scalar()
        if found is not None:
            return int(found)
        now = time.time()
        result = conn.execute(agents.insert().values(name=name, created_at=now, deleted_at=now))
        key = result.inserted_primary_key
        assert key is not None
        return int(key[0])

    @staticmethod
    def _usage_where(f: UsageFilter) -> list[ColumnElement[bool]]:
        from ironspire.store.ledger import usage_where

        return usage_where(f)

    def usage_rows(self, f: UsageFilter) -> list[dict[str, Any]]:
        """Ledger rows, oldest first, each naming its agent (``agent``)."""
        from sqlalchemy import select

        from ironspire.store.schema import agents, usage

        columns = [c for c in usage.c if c.name not in ("id", "agent_id")]
        query = (select(agents.c.name.label("agent"), *columns)
                 .select_from(usage.join(agents, agents.c.id == usage.c.agent_id))
                 .where(*self._usage_where(f)).order_by(usage.c.at, usage.c.id))
        with self.engine.connect() as conn:
            out = []
            for row in conn.execute(query):
                record = dict(row._mapping)
                record["streamed"] = bool(record["streamed"])
                out.append(record)
            return out

    def usage_totals(self, f: UsageFilter, by: str | None = None) -> list[dict[str, Any]]:
        """Sums over the ledger rows, aggregated by the database: one row per group (``by``:
        agent name, provider, or ``provider/model``), or a single row over everything; whole closed
        days come from the daily rollup (``store/rollups.py``), on both engines.

        Each row: ``turns`` (successful requests), ``errors``, the token columns, ``cost_usd`` and
        ``api_cost_usd`` (unknown counts 0), ``avg_latency_s`` (successful requests; None when
        none), ``agents`` (distinct agent names), ``first_at`` (the oldest row, None if none) and
        ``unknown_usage`` (answered requests whose provider reported no usage).
        """
        from sqlalchemy import case, func, select

        from ironspire.store import rollups
        from ironspire.store.schema import TOKEN_COLUMNS, agents, usage, usage_daily

        ok = case((usage.c.outcome == "ok", 1), else_=0)
        measures = [
            func.coalesce(func.sum(ok), 0).label("turns"),
            (func.count(usage.c.id) - func.coalesce(func.sum(ok), 0)).label("errors"),
            *(func.coalesce(func.sum(usage.c[c]), 0).label(c) for c in TOKEN_COLUMNS),
            func.coalesce(func.sum(usage.c.cost_usd), 0.0).label("cost_usd"),
            func.coalesce(func.sum(func.coalesce(usage.c.api_cost_usd, 0.0)), 0.0).label("api_cost_usd"),
            func.avg(case((usage.c.outcome == "ok", usage.c.latency_s))).label("avg_latency_s"),
            func.count(agents.c.name.distinct()).label("agents"),
            func.min(usage.c.at).label("first_at"),
            # answered requests whose provider reported no usage: their tokens are not in the sums
            func.coalesce(func.sum(case(((usage.c.outcome == "ok") & (usage.c.usage_state == "unknown"), 1),
                                        else_=0)), 0).label("unknown_usage"),
        ]
        keys: dict[str, ColumnElement[Any]] = {
            "agent": agents.c.name, "provider": usage.c.provider,
            "model": usage.c.provider + "/" + usage.c.model,
        }
        group = keys[by] if by is not None else None
        query = select(*([group.label("key")] if group is not None else []), *measures).select_from(
            usage.join(agents, agents.c.id == usage.c.agent_id)).where(*self._usage_where(f))
        if group is not None:
            query = query.group_by(group)
        with self.engine.begin() as conn:
            # whole closed days come from the daily rollup (store/rollups.py), which knows no
            # provider groups or outcomes: those filters read the raw rows
            if f.session is None and f.providers is None and f.outcome is None:
                until = rollups.refresh(conn, time.time())
                daily_keys: dict[str, ColumnElement[Any]] = {
                    "agent": agents.c.name, "provider": usage_daily.c.provider,
                    "model": usage_daily.c.provider + "/" + usage_daily.c.model,
                }
                where_daily: list[ColumnElement[bool]] = []
                if f.agent is not None:
                    where_daily.append(agents.c.name == f.agent)
                if f.provider is not None:
                    where_daily.append(usage_daily.c.provider == f.provider)
                where_raw = [w for w in self._usage_where(f)]
                rolled = rollups.totals_query(where_raw, where_daily,
                                              (group, daily_keys[by]) if group is not None and by else None,
                                              f.start, f.end, until)
                if rolled is not None:
                    query = rolled
            out = []
            for row in conn.execute(query):
                record = dict(row._mapping)
                if isinstance(record.get("first_at"), datetime):
                    record["first_at"] = record["first_at"].timestamp()
                out.append(record)
            return out

    def spend(self, start: float, agent_id: int | None = None) -> list[tuple[str, float, int]]:
        """Per provider since ``start`` (of one agent, or all): the cost charged and how many
        successful requests have no known cost (no price: ``api_cost_usd`` is NULL), for budgets."""
        rows = (self._rows("spend", {"start": start}) if agent_id is None
                else self._rows("spend_agent", {"start": start, "agent_id": agent_id}))
        return [(str(p), float(c), int(u)) for p, c, u in rows]

    def ledger_totals(self, f: UsageFilter, by: str | None = None) -> list[dict[str, Any]]:
        """The Analytics panel's sums (``store/ledger.py``): like ``usage_totals`` but with what is
        unknown counted apart: ``cost_unknown`` / ``api_cost_unknown`` (successful requests whose
        cost is unknown), ``usage_unknown`` / ``usage_estimated`` (whose counts are unknown or
        estimated), plus ``requests`` and ``latency_ok``; ``agents`` and ``first_at`` on the
        ungrouped row only. Whole days come from ``usage_daily_detail`` (on both engines)."""
        from sqlalchemy import func, select

        from ironspire.store.ledger import SUMS, finish
        from ironspire.store.schema import usage

        keys = {None: (), "agent": ("agent_id",), "provider": ("provider",), "model": ("provider", "model")}[by]
        rows = self.ledger.aggregate(f, keys)  # type: ignore[arg-type]
        names = self.ledger.agent_names()
        groups: dict[str, dict[str, Any]] = {}
        for r in rows:
            if by == "agent":
                key = names.get(int(r["agent_id"]), str(r["agent_id"]))
            elif by == "model":
                key = f"{r['provider']}/{r['model']}"
            else:
                key = str(r.get("provider", ""))
            into = groups.get(key)
            if into is None:
                groups[key] = {"key": key, **{s: r[s] for s in SUMS}}
            else:
                for s in SUMS:
                    into[s] += r[s]
        if by is not None:
            return [finish(g) for g in groups.values()]
        total = finish(groups[""]) if groups else finish({"key": "", **dict.fromkeys(SUMS, 0)})
        with self.engine.connect() as conn:
            first = conn.execute(select(func.min(usage.c.at)).where(*self._usage_where(f))).scalar()
            total["first_at"] = first.timestamp() if isinstance(first, datetime) else first
        total["agents"] = self.ledger.agent_count(f)
        return [total]

    def has_session(self, session: str) -> bool:
        from sqlalchemy import select

        from ironspire.store.schema import usage

        with self.engine.connect() as conn:
            return conn.execute(select(usage.c.id).where(usage.c.session == session).limit(1)).scalar() is not None

    def latest_session(self) -> str | None:
        from sqlalchemy import select

        from ironspire.store.schema import usage

        with self.engine.connect() as conn:
            found = conn.execute(select(usage.c.session).order_by(usage.c.at.desc()).limit(1)).scalar()
        return None if found is None else str(found)

    # --- provider health (shared by every process on the database) ----------------------------

    def add_transition(self, at: float, provider: str, state_from: str | None, state_to: str,
                       detail: str | None) -> None:
        """A provider's health changed (the Reliability tab's timeline): written as a check
        finds it, so on SQLite through sqlite3 like the turn it precedes."""
        if self._reads is None:
            self.ledger.add_transition(at, provider, state_from, state_to, detail)
            return
        self._reads.write(sql.INSERT_TRANSITION, {"at": at, "provider": provider, "state_from": state_from,
                                                  "state_to": state_to, "detail": detail})

    def health_states(self) -> dict[str, dict[str, Any]]:
        """Every provider's last known health, as ``HealthStatus.to_dict()`` records."""
        from sqlalchemy import select

        from ironspire.store.schema import provider_health

        with self.engine.connect() as conn:
            rows = conn.execute(select(provider_health.c.provider, provider_health.c.status)
                                .where(provider_health.c.status.is_not(None)))
            return {str(pid): json.loads(status) for pid, status in rows}

    def put_health(self, pid: str, status: Mapping[str, Any] | None) -> None:
        """Records (None: forgets) a provider's health; no configuration revision is bumped."""
        from sqlalchemy import delete

        from ironspire.store.schema import provider_health

        with self.engine.begin() as conn:
            if status is None:
                conn.execute(delete(provider_health).where(provider_health.c.provider == pid))
                return
            self._upsert(conn, provider_health, {"provider": pid, "status": json.dumps(dict(status)),
                                                 "checked_at": time.time()}, ("provider",),
                         insert_only={"claimed_at": 0.0})

    def claim_probe(self, pid: str, fresh: float) -> bool:
        """True if this process should probe ``pid`` now: nobody recorded its health, or took the
        turn to probe it, in the last ``fresh`` seconds. One atomic statement, so of N processes
        asking at once exactly one is told yes."""
        from ironspire.store.schema import provider_health

        now = time.time()
        stale = now - fresh
        insert = self._insert(provider_health).values(
            provider=pid, status=None, checked_at=0.0, claimed_at=now)
        claim = insert.on_conflict_do_update(
            index_elements=["provider"], set_={"claimed_at": now},
            where=(provider_health.c.checked_at < stale) & (provider_health.c.claimed_at < stale),
        ).returning(provider_health.c.provider)
        with self.engine.begin() as conn:
            return conn.execute(claim).first() is not None

    # --- backup and restore ------------------------------------------------------------------

    def backup(self, dest: Path) -> Path:
        """A consistent copy of the live database as one file (``restore`` or `ironspire import`)."""
        if self.uses(dest):
            raise ConfigurationError(f"{dest} is this workspace's live database; a backup cannot replace it.",
                                     hint="Give a path outside the workspace's files, e.g. ~/ironspire-backup.db.")
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            dest.unlink()
        if self.postgres:  # the same single-file backup, written row by row and checksummed
            from sqlalchemy.engine import make_url

            from ironspire.store import copy

            copy.copy(make_url(self.url), make_url(f"sqlite:///{dest}"))
            engine_sqlite.backup(dest, dest.with_name(dest.name + ".tmp"))  # one file: WAL folded in
            private(dest.with_name(dest.name + ".tmp")).replace(dest)
            return dest
        engine_sqlite.backup(self._file(), private(dest))
        return dest

    @staticmethod
    def is_backup(path: Path) -> bool:
        return engine_sqlite.is_backup(path)

    def check_backup(self, source: Path) -> dict[str, int]:
        """What the backup holds (agents, messages); a ConfigurationError, changing nothing, for a
        file that is this database, another program's SQLite file, or damaged."""
        if self.uses(source):
            raise ConfigurationError(f"{source} is this workspace's own database; nothing was restored.")
        try:
            missing = engine_sqlite.missing_tables(source)
            ok = engine_sqlite.integrity(source, read_only=True) == "ok"
        except sqlite3.DatabaseError as exc:
            raise ConfigurationError(f"{source} is a damaged database ({exc}); nothing was restored.") from None
        if missing:
            raise ConfigurationError(
                f"{source} is a SQLite database but not an Ironspire backup (it lacks {', '.join(sorted(missing))}); "
                "nothing was restored.", hint="Give a file written by `ironspire backup`.")
        if not ok:
            raise ConfigurationError(f"{source} is a damaged database; nothing was restored.")
        return engine_sqlite.backup_counts(source)

    def uses(self, path: Path) -> bool:
        """True if ``path`` is one of the files this database lives in (itself, its journal, WAL,
        shared memory or lock directory): writing there would destroy the workspace."""
        try:
            target = path.resolve()
        except OSError:
            return False
        if self.path is None:  # PostgreSQL: no file of its own to overwrite here
            return False
        db = self.path.resolve()
        own = {db, *(db.with_name(db.name + suffix) for suffix in ("-wal", "-shm", "-journal"))}
        return target in own or engine_sqlite.marker(db) in (target, *target.parents)

    def restore(self, source: Path) -> None:
        """Replaces this database's content with a backup's, then migrates it to head; a damaged
        backup is refused and nothing changes."""
        self.check_backup(source)
        before = self.config_revision()
        if self.postgres:
            self._restore_into_postgres(source, before)
            return
        from sqlalchemy import func, update

        from ironspire.store.schema import revision

        path = self._file()
        self.turns.close()
        if self._reads is not None:
            self._reads.close()
        self.engine.dispose()
        engine_sqlite.restore(path, source)
        migrations.upgrade(self.engine)
        # past every revision any process has seen, so each one reloads at its next turn
        with self.engine.begin() as conn:
            conn.execute(update(revision).where(revision.c.id == 1).values(
                config=func.max(revision.c.config, before) + 1))

    def _restore_into_postgres(self, source: Path, before: int) -> None:
        """The backup's rows replace this database's in one transaction (the copy checks its
        checksums before committing); the backup file itself is migrated on a scratch copy only."""
        import tempfile

        from sqlalchemy import func, update
        from sqlalchemy.engine import make_url

        from ironspire.store import copy
        from ironspire.store.schema import revision

        with tempfile.TemporaryDirectory() as scratch:
            staged = Path(scratch) / "restore.db"
            engine_sqlite.backup(source, staged)
            copy.copy(make_url(f"sqlite:///{staged}"), make_url(self.url), replace=True)
        with self.engine.begin() as conn:
            conn.execute(update(revision).where(revision.c.id == 1).values(
                config=func.greatest(revision.c.config, before) + 1))

    def integrity(self) -> str:
        if self.postgres:  # the server guards its pages itself; what is checked here is that it answers
            from sqlalchemy import func, select

            from ironspire.store.schema import revision

            with self.engine.connect() as conn:
                conn.execute(select(func.count()).select_from(revision)).scalar_one()
            return "ok"
        return engine_sqlite.integrity(self._file())
