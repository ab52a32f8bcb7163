"""Revision 0009 on a ledger written before it, on SQLite and the real PostgreSQL (partitioned):
every row is kept, unlinked (no turn, no place in a chain: the own route), the fallback-only
indexes exist with their predicate, and the Analytics panel reads old and new rows alike."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect, text

from ironspire.analytics import Analytics
from ironspire.store import engines, migrations, postgres
from ironspire.store.store import Store

NOW = time.time()


def _at_0008(url: str) -> None:
    """A database as revision 0008 left it, with an agent, a turn's messages and two ledger rows
    (a failure and an answer) written in plain SQL."""
    from alembic import command
    from alembic.config import Config

    engine = create_engine(url)
    config = Config()
    config.set_main_option("script_location", str(migrations.SCRIPTS))
    pg = engine.dialect.name == "postgresql"
    try:
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "0008")
        if pg:
            postgres.ensure_partitions(engine)
        at = "to_timestamp(:at)" if pg else ":at"
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO agents (id, name, created_at, deleted_at, effort) "
                              f"VALUES (1, 'veteran', {at}, 0, 'high')"), {"at": NOW - 60})
            for role in ("user", "assistant"):
                conn.execute(text("INSERT INTO messages (agent_id, role, body, status, created_at) "
                                  f"VALUES (1, :role, '{{}}', 'ok', {at})"), {"role": role, "at": NOW - 50})
            for outcome, delay in (("ProviderUnavailable", 40), ("ok", 39)):
                conn.execute(text(
                    "INSERT INTO usage (at, session, agent_id, provider, model, input_tokens, output_tokens, "
                    "cache_read_tokens, cache_write_tokens, reasoning_tokens, cost_usd, api_cost_usd, latency_s, "
                    f"outcome, streamed, usage_state, price) VALUES ({at}, 's', 1, 'openai', 'gpt-4.1', 5, 2, 0, 0, "
                    "0, 0.01, 0.01, 0.3, :outcome, false, 'reported', NULL)"), {"at": NOW - delay, "outcome": outcome})
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ironspire.db'}"
    return str(request.getfixturevalue("pg_url"))


def test_0009_keeps_every_older_row_unlinked_and_indexes_only_fallbacks(url: str) -> None:
    _at_0008(url)
    assert engines.upgrade(engines.parse(url)) == ("0008", migrations.HEAD)
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT outcome, turn, attempt, fallback_from FROM usage ORDER BY id")).all()
            indexes = {i["name"]: i for i in inspect(conn).get_indexes("usage")}
            if engine.dialect.name == "postgresql":
                where = dict(conn.execute(text(
                    "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'usage'")).all())
            else:
                where = dict(conn.execute(text(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'usage'")).all())
    finally:
        engine.dispose()
    assert [tuple(r) for r in rows] == [("ProviderUnavailable", None, None, None), ("ok", None, None, None)]
    assert indexes["ix_usage_fallback_at"]["column_names"] == ["at"]
    assert indexes["ix_usage_fallback_turn"]["column_names"] == ["turn"]
    for name in ("ix_usage_fallback_at", "ix_usage_fallback_turn"):
        assert "attempt > 0" in str(where[name]).replace("(", "").replace(")", "")

    store = Store.open(url)
    try:
        analytics = Analytics(store, session_id="s", session_started=NOW - 100)
        old = analytics.turns_page()
        assert [(r["outcome"], r["turn"], r["attempt"], r["answered_by_fallback"], r["then"]) for r in old["rows"]] \
            == [("ok", None, None, False, []), ("ProviderUnavailable", None, None, False, [])]
        assert analytics.reliability()["fallbacks"] == {"turns": 0, "routes": []}
        # a turn written after the upgrade is linked, next to the old rows
        failed = (NOW - 10, "s", 1, "openai", "gpt-4.1", 0, 0, 0, 0, 0, None, None, 0.1, "ProviderUnavailable", 0,
                  "unknown", None, 0, None)
        answer = (NOW - 9, "s", 1, "claude-api", "claude-haiku-4-5", 1, 1, 0, 0, 0, None, None, 0.2, "ok", 0,
                  "reported", None, 1, "openai/gpt-4.1")
        store.turns.write([(1, "user", '{"role": "user", "parts": []}', "ok", NOW - 10),
                           (1, "assistant", '{"role": "assistant", "parts": []}', "ok", NOW - 9)], answer, [failed])
        new = [r for r in analytics.turns() if r["turn"] is not None]
        assert [(r["attempt"], r["outcome"], r["fallback_from"]) for r in new] == [
            (0, "ProviderUnavailable", None), (1, "ok", "openai/gpt-4.1")]
        assert len({r["turn"] for r in new}) == 1
        assert analytics.reliability()["fallbacks"]["turns"] == 1
        assert len(analytics.turns()) == 4
    finally:
        store.close()
