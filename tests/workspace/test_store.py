"""The store's boundaries: it alone speaks SQL, the turn path's SQL text is what the Core
definitions compile to, the database is chosen by URL, and the ledger refers to agents by id
(revision 0002 carries an older ledger over, names intact)."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.dialects import sqlite

from ironspire.errors import ConfigurationError
from ironspire.store import sql, statements
from ironspire.workspace import Workspace
from workspace.test_migrations import _initial_database

SRC = Path(__file__).resolve().parents[2] / "src" / "ironspire"


def test_the_turn_paths_sql_is_what_the_core_statements_compile_to() -> None:
    compiled = statements.compiled(sqlite.dialect(paramstyle="qmark"))
    assert compiled == {"sync_check": sql.SYNC_CHECK, "insert_message": sql.INSERT_MESSAGE,
                        "insert_usage": sql.INSERT_USAGE, "insert_turn_usage": sql.INSERT_TURN_USAGE}


def test_the_reads_sql_is_what_the_core_statements_compile_to() -> None:
    from ironspire.store.schema import custom_endpoints

    compiled = statements.compiled_reads(sqlite.dialect(paramstyle="named"))
    assert compiled == {name: getattr(sql, name.upper()) for name in statements.READS}
    assert tuple(c.name for c in custom_endpoints.c) == sql.CUSTOM_ENDPOINT_COLUMNS
    assert tuple(c.name for c in custom_endpoints.c if c.type.python_type is bool) == sql.CUSTOM_ENDPOINT_FLAGS


@pytest.mark.parametrize("url", ["sqlite:///ironspire.db", "sqlite:////abs/dir/ironspire.db", " sqlite:///a b/c.db ",
                                 "sqlite:///~/x.db", "sqlite:///C:\\Users\\x.db"])
def test_a_plain_sqlite_url_is_read_as_sqlalchemy_reads_it(url: str) -> None:
    from ironspire.store import engines

    assert engines.sqlite_path(url) == Path(str(engines.parse(url).database))


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "sqlite:///x.db?mode=ro", "sqlite:///a%20b.db",
                                 "sqlite+pysqlite:///x.db", "postgresql://u@h/db"])
def test_other_urls_are_left_to_sqlalchemy(url: str) -> None:
    from ironspire.store import engines

    assert engines.sqlite_path(url) is None


def test_no_module_outside_the_store_speaks_sql() -> None:
    database = re.compile(r"^\s*(import|from)\s+(sqlite3|sqlalchemy|alembic)\b|raw_connection|exec_driver_sql", re.M)
    offenders = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py")
                 if p.relative_to(SRC).parts[0] != "store" and database.search(p.read_text(encoding="utf-8"))]
    assert offenders == []


@pytest.mark.sqlite_only("about SQLite files")
def test_the_database_is_chosen_by_url(open_ws: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "db" / "team.db"
    elsewhere.parent.mkdir()
    monkeypatch.setenv("IRONSPIRE_DATABASE_URL", f"sqlite:///{elsewhere}")
    ws: Workspace = open_ws(tmp_path / "home")
    try:
        ws.create_agent("kept")
        assert ws.path == elsewhere and not (tmp_path / "home" / "ironspire.db").exists()
    finally:
        ws.close()
    monkeypatch.setenv("IRONSPIRE_DATABASE_URL", "mysql://db.example/ironspire")
    with pytest.raises(ConfigurationError, match=r"uses 'mysql'.*postgresql\+psycopg://"):
        open_ws(tmp_path / "home")
    monkeypatch.setenv("IRONSPIRE_DATABASE_URL", "postgresql://nobody@127.0.0.1:9/ironspire")
    with pytest.raises(ConfigurationError, match=r"cannot reach the workspace database postgresql\+psycopg://"):
        open_ws(tmp_path / "home")


@pytest.mark.sqlite_only("about SQLite files")
def test_revision_0002_carries_the_ledger_over_by_agent_id(open_ws: Any, tmp_path: Path) -> None:
    home = tmp_path / "old"
    home.mkdir()
    db = home / "ironspire.db"
    _initial_database(db)  # agent "veteran" with one ledger row
    con = sqlite3.connect(db)
    with con:  # two requests of an agent deleted before the upgrade: only its name is left
        for at in (4.0, 5.0):
            con.execute("INSERT INTO usage (at, session, agent, provider, model, input_tokens, output_tokens, "
                        "cache_read_tokens, cache_write_tokens, reasoning_tokens, cost_usd, api_cost_usd, "
                        "latency_s, outcome, streamed) VALUES (?, 's', 'gone', 'openai', 'gpt-4.1', 10, 1, 0, 0, "
                        "0, 0.5, 0.5, 0.2, 'ok', 0)", (at,))
    con.close()

    ws: Workspace = open_ws(home)
    try:
        assert [r["agent"] for r in ws.analytics.turns()] == ["veteran", "gone", "gone"]
        assert {r["agent"]: r["cost_usd"] for r in ws.analytics.summary("agent")} == {"gone": 1.0, "veteran": 0.0}
        assert [a.name for a in ws.agents()] == ["veteran"]  # the retired name is no live agent...
        ws.create_agent("gone")  # ...and is free to use again; the ledger still groups by name
        ws.delete_agent("veteran")
        assert [r["agent"] for r in ws.analytics.turns()] == ["veteran", "gone", "gone"]
        assert ws.analytics.kpis()["active_agents"] == 2
    finally:
        ws.close()
    con = sqlite3.connect(db)
    rows = con.execute("SELECT usage.agent_id, agents.name FROM usage JOIN agents ON agents.id = usage.agent_id "
                       "ORDER BY usage.id").fetchall()
    columns = {r[1] for r in con.execute("PRAGMA table_info(usage)")}
    assert con.execute("PRAGMA foreign_key_check").fetchall() == []
    con.close()
    assert [name for _, name in rows] == ["veteran", "gone", "gone"] and rows[1][0] == rows[2][0] != rows[0][0]
    assert "agent" not in columns and "agent_id" in columns


def test_every_read_of_opening_and_a_turn_answers_alike_on_both_engines(open_ws: Any) -> None:
    """The reads SQLite runs as text on sqlite3 and PostgreSQL as Core (``statements.READS``):
    the same rows, the same Python types."""
    from ironspire.catalog.providers import CustomEndpoint
    from ironspire.messages import Message
    from ironspire.store.ledger import UsageFilter
    from ironspire.store.schema import ROUTE_COLUMNS, USAGE_COLUMNS

    ws = open_ws()
    try:
        spec = ws.add_custom_endpoint(CustomEndpoint("loop", "http://127.0.0.1:9/v1", "m1", tools=True))
        first = ws.create_agent("first", spec.id, "m1", system="Be brief.")
        ws.create_agent("second", None, None)
        ws.set_budget(5.0)
        store = ws.store

        def usage(at: float, cost: float | None, outcome: str) -> tuple[Any, ...]:
            values = {c: 0 for c in USAGE_COLUMNS} | {
                "at": at, "session": "s", "agent_id": first.id, "provider": spec.id, "model": "m1", "cost_usd": cost,
                "api_cost_usd": None, "latency_s": 0.5, "outcome": outcome, "streamed": False,
                "usage_state": "reported", "price": None, "attempt": 0, "fallback_from": None}
            return tuple(values[c] for c in (*USAGE_COLUMNS, *ROUTE_COLUMNS))

        store.turns.write([(first.id, "user", Message.user("q1").to_json(), "ok", 10.0),
                           (first.id, "assistant", Message.assistant("r1").to_json(), "ok", 10.5)],
                          usage(10.0, 0.25, "ok"))
        store.turns.write([(first.id, "user", Message.user("q2").to_json(), "unanswered", 20.0)],
                          usage(20.0, None, "RateLimitError"))
        store.add_transition(30.0, spec.id, None, "reachable", None)

        config = store.load_config()
        assert config.revision == store.config_revision()
        assert config.settings["budget"]["usd"] == 5.0
        assert [(r["provider_id"], r["tools"], r["vision"], r["has_key"]) for r in config.custom_endpoints] == [
            (spec.id, True, False, False)]
        assert [(a.name, a.system, a.provider, a.model, a.effort) for a in config.agents] == [
            ("first", "Be brief.", spec.id, "m1", "high"), ("second", None, None, None, "high")]
        assert store.agent_records() == config.agents
        assert store.agent_record("second") == config.agents[1] and store.agent_record("nobody") is None

        everything = store.transcript(first.id)
        assert [(Message.from_json(b).text, s, t) for _, b, s, t in everything] == [
            ("q1", "ok", 10.0), ("r1", "ok", 10.5), ("q2", "unanswered", 20.0)]
        assert all(type(i) is int and type(t) is float for i, _, _, t in everything)
        assert store.transcript(first.id, unanswered=False) == everything[:2]
        assert store.transcript(first.id, limit=2) == everything[1:]
        assert store.transcript(first.id, limit=1, unanswered=False) == everything[1:2]
        assert store.message_counts(first.id) == {"ok": 2, "unanswered": 1}

        assert store.spend(0.0) == [(spec.id, 0.25, 1)]  # the successful request has no API price
        assert store.spend(15.0, first.id) == [(spec.id, 0.0, 0)]
        assert store.spend(0.0, first.id + 100) == []
        assert [(t["provider"], t["state_to"]) for t in store.ledger.transitions(UsageFilter())] == [
            (spec.id, "reachable")]
    finally:
        ws.close()
