"""What PostgreSQL adds to the store: explicit migrations (an un-migrated or newer database is
refused, untouched), jsonb bodies and timestamptz times, a ledger partitioned by month, and
per-agent advisory locks that a killed process gives back."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from ironspire.errors import ConfigurationError
from ironspire.store import engines, migrations, postgres
from ironspire.store.store import Store
from ironspire.workspace import Workspace


def _psql(url: str) -> psycopg.Connection[Any]:
    u = make_url(url)
    return psycopg.connect(host=u.host, port=u.port, user=u.username, dbname=u.database, autocommit=True)


def test_a_process_refuses_an_unmigrated_database_and_db_upgrade_fixes_it(pg_url: str) -> None:
    with pytest.raises(ConfigurationError, match=r"never migrated.*ironspire db upgrade"):
        Store.open(pg_url)
    with _psql(pg_url) as pg:  # refused untouched: no table was created
        assert pg.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone() == (0,)
    assert engines.upgrade(engines.parse(pg_url)) == (None, migrations.HEAD)
    assert engines.upgrade(engines.parse(pg_url)) == (migrations.HEAD, migrations.HEAD)  # idempotent
    Store.open(pg_url).close()


def test_a_database_from_a_newer_ironspire_is_refused_untouched(pg_url: str) -> None:
    engines.upgrade_url(pg_url)
    with _psql(pg_url) as pg:
        pg.execute("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(ConfigurationError, match="'9999', which this Ironspire does not know"):
        Store.open(pg_url)
    with pytest.raises(ConfigurationError, match="newer version"):
        engines.upgrade_url(pg_url)
    with _psql(pg_url) as pg:
        assert pg.execute("SELECT version_num FROM alembic_version").fetchone() == ("9999",)


def test_the_migrated_schema_is_the_mapped_schema(pg_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import create_engine

    from ironspire.store.schema import metadata

    engines.upgrade_url(pg_url)
    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
    finally:
        engine.dispose()
    # the partitions (and their copies of the ledger's indexes) are its storage, not the schema's tables
    def partition(d: Any) -> bool:
        table = d[1] if d[0] == "remove_table" else getattr(d[1], "table", None)
        return table is not None and table.name.startswith("usage_")

    assert [d for d in diff if not partition(d)] == []


def test_bodies_are_jsonb_times_are_timestamptz_and_the_ledger_is_partitioned(pg_url: str) -> None:
    engines.upgrade_url(pg_url)
    store = Store.open(pg_url)
    try:
        agent_id, _ = store.create_agent("a", None, "openai", "gpt-4.1")
        at = datetime(2026, 3, 15, 12, 0, 0, 250_000, tzinfo=UTC).timestamp()
        body = '{"role": "user", "content": [{"type": "text", "text": "hi"}], "meta": {}}'
        store.turns.write([(agent_id, "user", body, "ok", at)],
                          (at, "s", agent_id, "openai", "gpt-4.1", 1, 2, 0, 0, 0, 0.5, 0.5, 0.1, "ok", 0, "reported",
                           None, 0, None))
        [(_, stored, status, created)] = store.transcript(agent_id)
    finally:
        store.close()
    assert json.loads(stored) == json.loads(body) and status == "ok"
    assert created == at
    with _psql(pg_url) as pg:
        kinds = dict(pg.execute("SELECT column_name, data_type FROM information_schema.columns "
                                "WHERE table_name = 'messages'").fetchall())
        assert kinds["body"] == "jsonb" and kinds["created_at"] == "timestamp with time zone"
        assert pg.execute("SELECT body->'content'->0->>'text' FROM messages").fetchone() == ("hi",)
        # March 2026 is in the past: its row waited in the DEFAULT partition...
        assert pg.execute("SELECT count(*) FROM usage_default").fetchone() == (1,)
    postgres.ensure_partitions(engines.make_engine(engines.parse(pg_url)), at, at)
    with _psql(pg_url) as pg:  # ...and moved into its month's partition once that was made
        assert pg.execute("SELECT count(*) FROM usage_y2026m03").fetchone() == (1,)
        assert pg.execute("SELECT count(*) FROM usage_default").fetchone() == (0,)
        months = {r[0] for r in pg.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'usage'")}
    now = datetime.now(UTC)
    assert postgres.partition_name(now.replace(day=1)) in months  # this month is always ready ahead
    assert len(months) >= 1 + postgres.AHEAD + 2


def test_months_span_year_ends() -> None:
    start = datetime(2025, 11, 20, tzinfo=UTC).timestamp()
    end = datetime(2026, 2, 1, tzinfo=UTC).timestamp()
    assert [postgres.partition_name(m) for m in postgres.months(start, end)] == [
        "usage_y2025m11", "usage_y2025m12", "usage_y2026m01", "usage_y2026m02"]


HOLDER = """
import asyncio, sys
from ironspire.store.store import Store
async def main():
    store = Store.open(sys.argv[1])
    lock = store.agent_lock(int(sys.argv[2]))
    await lock.acquire()
    print("held", flush=True)
    await asyncio.sleep(3600)
asyncio.run(main())
"""


async def test_an_agents_lock_is_shared_across_processes_and_freed_when_its_holder_is_killed(pg_url: str) -> None:
    engines.upgrade_url(pg_url)
    holder = await asyncio.create_subprocess_exec(sys.executable, "-c", HOLDER, pg_url, "7",
                                                  stdout=asyncio.subprocess.PIPE)
    store = Store.open(pg_url)
    try:
        assert holder.stdout is not None
        assert (await asyncio.wait_for(holder.stdout.readline(), 30)).strip() == b"held"
        other = store.agent_lock(8)  # another agent is not held up
        await asyncio.wait_for(other.acquire(), 5)
        other.release()
        mine = store.agent_lock(7)
        waiting = asyncio.ensure_future(mine.acquire())
        await asyncio.sleep(0.5)
        assert not waiting.done()  # held by the other process
        started = time.monotonic()
        holder.kill()  # kill -9: no chance to unlock
        await asyncio.wait_for(waiting, 10)
        assert time.monotonic() - started < 5
        mine.release()
    finally:
        if holder.returncode is None:
            holder.kill()
        await holder.wait()
        store.close()


async def test_a_cancelled_wait_leaves_the_lock_free(pg_url: str) -> None:
    engines.upgrade_url(pg_url)
    store = Store.open(pg_url)
    try:
        first = store.agent_lock(1)
        await first.acquire()
        second = store.agent_lock(1)
        waiting = asyncio.ensure_future(second.acquire())
        await asyncio.sleep(0.2)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        first.release()
        third = store.agent_lock(1)  # nobody took it behind our back
        await asyncio.wait_for(third.acquire(), 5)
        third.release()
        with _psql(pg_url) as pg:
            assert pg.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").fetchone() == (0,)
    finally:
        store.close()


def test_the_workspace_opens_on_the_url_from_the_environment(pg_url: str, monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Any) -> None:
    engines.upgrade_url(pg_url)
    monkeypatch.setenv("IRONSPIRE_DATABASE_URL", pg_url.replace("postgresql+psycopg://", "postgres://"))
    ws = Workspace.open(tmp_path / "home")
    try:
        ws.create_agent("shared")
        assert ws.path is None and ws.store.postgres
        assert not (tmp_path / "home" / "ironspire.db").exists()
    finally:
        ws.close()
    with _psql(pg_url) as pg:
        assert pg.execute("SELECT name FROM agents").fetchall() == [("shared",)]


def test_a_url_with_a_password_is_never_shown_with_it() -> None:
    with pytest.raises(ConfigurationError) as refused:
        Store.open("postgresql://team:hunter2-secret@127.0.0.1:9/ironspire")
    assert "hunter2-secret" not in str(refused.value) and "team:***@127.0.0.1:9" in str(refused.value)


async def test_a_turns_sync_check_never_runs_on_the_event_loop(pg_url: str, tmp_path: Any,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """On SQLite the check is a local WAL read done inline; on PostgreSQL it is a round trip to
    the server, which a busy loop (a server with many agents) must not wait for."""
    import threading

    from support.memory_keyring import use_memory_keyring
    from workspace.conftest import FakeHealth
    from workspace.loopback import Server, serving

    keyring = use_memory_keyring(monkeypatch)
    next(keyring)
    engines.upgrade_url(pg_url)
    seen: list[bool] = []
    original = postgres.PostgresTurns.check

    def check(self: postgres.PostgresTurns, agent_id: int) -> tuple[int, int | None]:
        seen.append(threading.current_thread() is threading.main_thread())
        return original(self, agent_id)

    monkeypatch.setattr(postgres.PostgresTurns, "check", check)
    ws = Workspace.open(tmp_path / "home", database_url=pg_url, health=FakeHealth)
    try:
        with serving(Server("ol")) as (srv,):
            ws.set_provider_setting("ollama", "base_url", srv.url)
            agent = ws.create_agent("a", provider="ollama", model="llama3")  # no secret: the inline path on SQLite
            for text in ("one", "two", "three"):
                await agent.send(text)
    finally:
        await ws.aclose()
        keyring.close()
    assert len(seen) >= 3 and not any(seen)
