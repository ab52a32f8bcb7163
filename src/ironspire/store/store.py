"""The store: every SQL statement Ironspire runs, behind one object chosen by a database URL.

``Store.open(url)`` migrates the database to head and returns the store. Configuration writes
(settings, providers, custom endpoints, agents) each run in one transaction that also bumps the
configuration revision, so another process sees with one cheap read (``turns.check``) that what
it holds is stale and reloads it (``load_config``). The turn path (``turns``: the check and the
one-transaction write) and the agent locks are the engine's own; everything else is SQLAlchemy
Core, the same for every engine. Only SQLite is implemented; a server database (issue #18) adds
its hooks (pool, advisory locks, backup) beside ``store/sqlite.py``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, create_engine, delete, event, func, select, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.sql.expression import ColumnElement

from ironspire.errors import ConfigurationError
from ironspire.store import sqlite as engine_sqlite
from ironspire.store.ledger import SUMS, Ledger, UsageFilter, finish, usage_where
from ironspire.store.locks import FileLock
from ironspire.store.schema import (
    DB_NAME,
    TOKEN_COLUMNS,
    USAGE_COLUMNS,
    agents,
    custom_endpoints,
    messages,
    provider_settings,
    providers,
    revision,
    settings,
    usage,
)

#: the environment variable that picks the database (a SQLAlchemy URL); default: SQLite in the home
URL_ENV = "IRONSPIRE_DATABASE_URL"


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


class _Write:
    def __init__(self, conn: Connection) -> None:
        self.conn, self.revision = conn, 0


class Store:
    """Open with ``Store.open(url)``; ``close()`` releases the engine and the turn log."""

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
            raise ConfigurationError(
                f"unsupported workspace database {parsed.render_as_string(hide_password=True)!r}: this Ironspire "
                "stores a workspace in a SQLite file only.",
                hint=f"Unset {URL_ENV} (SQLite under IRONSPIRE_HOME), or give sqlite:////path/to/ironspire.db.",
            )
        self.url = url
        self.path = Path(parsed.database)
        self.engine: Engine = create_engine(url)
        event.listen(self.engine, "connect", engine_sqlite.on_connect)
        from ironspire.store import migrations

        migrations.upgrade(self.engine)
        self.turns = engine_sqlite.SqliteTurns(self.path)
        self.ledger = Ledger(self.engine)

    @classmethod
    def open(cls, url: str) -> Store:
        return cls(url)

    def close(self) -> None:
        self.turns.close()
        self.engine.dispose()

    def agent_lock(self, agent_id: int) -> FileLock:
        """The lock that serialises one agent's turns across processes."""
        return engine_sqlite.agent_lock(self.path, agent_id)

    def schema_revision(self) -> str | None:
        from ironspire.store import migrations

        return migrations.current_revision(self.engine)

    # --- configuration -----------------------------------------------------------------------

    @contextmanager
    def _config_write(self) -> Iterator[_Write]:
        """One transaction for a configuration write and its revision bump (``write.revision``)."""
        with self.engine.begin() as conn:
            write = _Write(conn)
            yield write
            write.revision = int(conn.execute(update(revision).where(revision.c.id == 1).values(
                config=revision.c.config + 1).returning(revision.c.config)).scalar_one())

    def _upsert(self, conn: Connection, table: Any, values: Mapping[str, Any], keys: Sequence[str]) -> None:
        statement = sqlite_insert(table).values(dict(values))
        rest = {k: v for k, v in values.items() if k not in keys}
        conn.execute(statement.on_conflict_do_update(index_elements=list(keys), set_=rest)
                     if rest else statement.on_conflict_do_nothing(index_elements=list(keys)))

    def config_revision(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(revision.c.config).where(revision.c.id == 1)).scalar_one())

    def load_config(self) -> Config:
        with self.engine.begin() as conn:  # one read transaction: a consistent snapshot
            config = Config(int(conn.execute(select(revision.c.config).where(revision.c.id == 1)).scalar_one()))
            for key, value in conn.execute(select(settings.c.key, settings.c.value)):
                config.settings[key] = json.loads(value)
            for pid, enabled in conn.execute(select(providers.c.id, providers.c.enabled)):
                config.enabled[pid] = bool(enabled)
            for pid, name, value in conn.execute(select(provider_settings)):
                config.provider_settings.setdefault(pid, {})[name] = value
            config.custom_endpoints = [dict(row._mapping) for row in conn.execute(select(custom_endpoints))]
            config.agents = self._agents(conn)
        return config

    def set_settings(self, values: Mapping[str, Any]) -> int:
        with self._config_write() as w:
            conn = w.conn
            for key, value in values.items():
                self._upsert(conn, settings, {"key": key, "value": json.dumps(value)}, ("key",))
        return w.revision

    def set_enabled(self, pid: str, enabled: bool) -> int:
        with self._config_write() as w:
            conn = w.conn
            self._upsert(conn, providers, {"id": pid, "enabled": enabled}, ("id",))
        return w.revision

    def set_provider_setting(self, pid: str, name: str, value: str | None) -> int:
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
        with self._config_write() as w:
            conn = w.conn
            self._upsert(conn, custom_endpoints, values, ("provider_id",))
        return w.revision

    def remove_custom_endpoint(self, pid: str) -> int:
        with self._config_write() as w:
            conn = w.conn
            conn.execute(delete(custom_endpoints).where(custom_endpoints.c.provider_id == pid))
            conn.execute(delete(provider_settings).where(provider_settings.c.provider == pid))
            conn.execute(delete(providers).where(providers.c.id == pid))
        return w.revision

    # --- agents ------------------------------------------------------------------------------

    @staticmethod
    def _agents(conn: Connection, where: ColumnElement[bool] | None = None) -> list[AgentRecord]:
        query = select(agents.c.id, agents.c.name, agents.c.system, agents.c.provider, agents.c.model,
                       agents.c.effort).where(
            agents.c.deleted_at == 0).order_by(agents.c.id)
        if where is not None:
            query = query.where(where)
        return [AgentRecord(*row) for row in conn.execute(query)]

    def agent_records(self) -> list[AgentRecord]:
        with self.engine.connect() as conn:
            return self._agents(conn)

    def agent_record(self, name: str) -> AgentRecord | None:
        with self.engine.connect() as conn:
            found = self._agents(conn, agents.c.name == name)
        return found[0] if found else None

    def create_agent(self, name: str, system: str | None, provider: str | None, model: str | None,
                     effort: str = "high") -> tuple[int, int]:
        """The new agent's id and the revision; a ConfigurationError if a live agent has the name."""
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
        with self._config_write() as w:
            conn = w.conn
            conn.execute(update(agents).where(agents.c.id == agent_id).values(**values))
        return w.revision

    def delete_agent(self, agent_id: int) -> int:
        """Deletes the agent's history; its row stays, retired, so the ledger keeps its name."""
        with self._config_write() as w:
            conn = w.conn
            conn.execute(delete(messages).where(messages.c.agent_id == agent_id))
            conn.execute(update(agents).where(agents.c.id == agent_id).values(deleted_at=time.time()))
        self.agent_lock(agent_id).remove()
        return w.revision

    # --- history -----------------------------------------------------------------------------

    def transcript(self, agent_id: int) -> list[tuple[int, str, str, float]]:
        """(id, body, status, created_at) of every stored message of the agent, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(messages.c.id, messages.c.body, messages.c.status, messages.c.created_at)
                                .where(messages.c.agent_id == agent_id).order_by(messages.c.id))
            return [(int(i), str(b), str(s), float(t)) for i, b, s, t in rows]

    def replace_history(self, agent_id: int, entries: Iterable[tuple[str, str]]) -> None:
        """Replaces the agent's stored messages with ``(role, body)`` entries, as completed history."""
        now = time.time()
        with self.engine.begin() as conn:
            conn.execute(delete(messages).where(messages.c.agent_id == agent_id))
            rows = [{"agent_id": agent_id, "role": role, "body": body, "status": "ok", "created_at": now}
                    for role, body in entries]
            if rows:
                conn.execute(messages.insert(), rows)

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return {"agents": int(conn.execute(select(func.count()).select_from(agents)
                                               .where(agents.c.deleted_at == 0)).scalar_one()),
                    "messages": int(conn.execute(select(func.count()).select_from(messages)).scalar_one())}

    # --- the ledger --------------------------------------------------------------------------

    def insert_usage(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Adds ledger rows that name their agent (``agent``: a name), as a ledger carried over
        from elsewhere does: a name no live agent has is kept under a retired agent of that name."""
        count = 0
        with self.engine.begin() as conn:
            ids: dict[str, int] = {}
            for row in rows:
                name = str(row["agent"])
                if name not in ids:
                    ids[name] = self._ledger_agent(conn, name)
                values = {c: row.get(c) for c in USAGE_COLUMNS if c != "agent_id"}
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
        return usage_where(f)

    def usage_rows(self, f: UsageFilter) -> list[dict[str, Any]]:
        """Ledger rows, oldest first, each naming its agent (``agent``)."""
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
        agent name, provider, or ``provider/model``), or a single row over everything.

        Each row: ``turns`` (successful requests), ``errors``, the token columns, ``cost_usd``,
        ``api_cost_usd`` (unknown counts 0; ``cost_unknown`` counts the successful requests whose
        billed cost is unknown, ``usage_unknown`` / ``usage_estimated`` those whose token counts
        are unknown or estimated), ``avg_latency_s`` (successful requests; None when
        none), ``agents`` (distinct agent names) and ``first_at`` (the oldest row, None if none).
        """
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
            seen = select(usage.c.agent_id).where(*self._usage_where(f)).distinct().scalar_subquery()
            total["agents"] = int(conn.execute(select(func.count(agents.c.name.distinct()))
                                               .where(agents.c.id.in_(seen))).scalar_one())
            total["first_at"] = conn.execute(select(func.min(usage.c.at)).where(*self._usage_where(f))).scalar()
        return [total]

    def has_session(self, session: str) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(select(usage.c.id).where(usage.c.session == session).limit(1)).scalar() is not None

    def latest_session(self) -> str | None:
        with self.engine.connect() as conn:
            found = conn.execute(select(usage.c.session).order_by(usage.c.at.desc()).limit(1)).scalar()
        return None if found is None else str(found)

    # --- backup and restore ------------------------------------------------------------------

    def backup(self, dest: Path) -> Path:
        """A consistent copy of the live database as one file (``restore`` or `ironspire import`)."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            dest.unlink()
        engine_sqlite.backup(self.path, dest)
        return dest

    @staticmethod
    def is_backup(path: Path) -> bool:
        return engine_sqlite.is_backup(path)

    def restore(self, source: Path) -> None:
        """Replaces this database's content with a backup's, then migrates it to head; a damaged
        backup is refused and nothing changes."""
        if engine_sqlite.integrity(source, read_only=True) != "ok":
            raise ConfigurationError(f"{source} is a damaged database; nothing was restored.")
        before = self.config_revision()
        self.turns.close()
        self.engine.dispose()
        engine_sqlite.restore(self.path, source)
        from ironspire.store import migrations

        migrations.upgrade(self.engine)
        # past every revision any process has seen, so each one reloads at its next turn
        with self.engine.begin() as conn:
            conn.execute(update(revision).where(revision.c.id == 1).values(
                config=func.max(revision.c.config, before) + 1))

    def integrity(self) -> str:
        return engine_sqlite.integrity(self.path)
