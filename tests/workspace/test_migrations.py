"""Schema migrations: the migrated schema is the mapped one, a database made by the initial
migration (with data in it) opens and upgrades through a later revision without losing a row,
and a database from a newer Ironspire is refused untouched."""

from __future__ import annotations

import shutil
import sqlite3
import textwrap
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine

from ironspire.errors import ConfigurationError
from ironspire.messages import Message
from ironspire.store import migrations
from ironspire.store.schema import metadata
from ironspire.store.store import Store
from ironspire.workspace import Workspace

#: the revision after the current head, added by the test below
NEXT = f"{int(migrations.HEAD) + 1:04d}"

#: a later revision of the kind SQLite makes hard: a column type change on the parent table of
#: messages, which batch mode can only make by copying the table and dropping the old one
REVISION_NEXT = f'''
"""Agents get a colour and longer names.

Revision ID: {NEXT}
Revises: {migrations.HEAD}
"""

import sqlalchemy as sa
from alembic import op

revision = "{NEXT}"
down_revision = "{migrations.HEAD}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        batch.add_column(sa.Column("colour", sa.String(16), nullable=False, server_default="grey"))
        batch.alter_column("name", type_=sa.String(200), existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        batch.alter_column("name", type_=sa.String(100), existing_nullable=False)
        batch.drop_column("colour")
'''


def _initial_database(path: Path) -> None:
    """A database as the first release left it: schema by revision 0001 alone, rows written
    with plain SQL (no help from the current code)."""
    from alembic import command
    from alembic.config import Config

    engine = create_engine(f"sqlite:///{path}")
    config = Config()
    config.set_main_option("script_location", str(migrations.SCRIPTS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
    engine.dispose()
    con = sqlite3.connect(path)
    with con:
        con.execute("INSERT INTO settings VALUES ('default_provider', '\"ollama\"'), ('default_model', '\"llama3\"')")
        con.execute("INSERT INTO agents (id, name, system, provider, model, created_at) "
                    "VALUES (1, 'veteran', 'Be brief.', NULL, NULL, 1.0)")
        for role, body in (("user", Message.user("hello")), ("assistant", Message.assistant("hi"))):
            con.execute("INSERT INTO messages (agent_id, role, body, status, created_at) VALUES (1, ?, ?, 'ok', 2.0)",
                        (role, body.to_json()))
        con.execute("INSERT INTO usage (at, session, agent, provider, model, input_tokens, output_tokens, "
                    "cache_read_tokens, cache_write_tokens, reasoning_tokens, cost_usd, api_cost_usd, latency_s, "
                    "outcome, streamed) VALUES (3.0, 's', 'veteran', 'ollama', 'llama3', 5, 2, 0, 0, 0, 0, NULL, "
                    "0.1, 'ok', 0)")
    con.close()


def _scripts_with_next(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scripts = tmp_path / "scripts"
    shutil.copytree(migrations.SCRIPTS, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    (scripts / "versions" / f"{NEXT}_agent_colour.py").write_text(textwrap.dedent(REVISION_NEXT))
    monkeypatch.setattr(migrations, "SCRIPTS", scripts)
    monkeypatch.setattr(migrations, "HEAD", NEXT)


@pytest.mark.sqlite_only("SQLite migrates itself; PostgreSQL's explicit migrations: tests/store/test_postgres.py")
def test_migrated_schema_is_the_mapped_schema(ws: Workspace) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    assert migrations.current_revision(ws.store.engine) == migrations.HEAD == migrations.script_head()
    with ws.store.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []


@pytest.mark.sqlite_only("SQLite migrates itself; PostgreSQL's explicit migrations: tests/store/test_postgres.py")
def test_a_database_made_by_the_initial_migration_opens(open_ws: Any, tmp_path: Path) -> None:
    home = tmp_path / "old"
    home.mkdir()
    _initial_database(home / "ironspire.db")
    ws: Workspace = open_ws(home)
    try:
        assert ws.default == ("ollama", "llama3")
        veteran = ws.agent("veteran")
        assert veteran.inherits and veteran.system == "Be brief."
        assert veteran.effort == "high"  # agents from before effort levels get the default
        assert [m.text for m in veteran.history] == ["hello", "hi"]
        assert [r["input_tokens"] for r in ws.analytics.turns()] == [5]
        ws.create_agent("newcomer")
    finally:
        ws.close()


@pytest.mark.sqlite_only("SQLite migrates itself; PostgreSQL's explicit migrations: tests/store/test_postgres.py")
def test_upgrade_through_a_later_revision_keeps_every_row(
    open_ws: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "old"
    home.mkdir()
    db = home / "ironspire.db"
    _initial_database(db)
    _scripts_with_next(tmp_path, monkeypatch)

    ws: Workspace = open_ws(home)
    try:
        assert migrations.current_revision(ws.store.engine) == NEXT
        assert [m.text for m in ws.agent("veteran").history] == ["hello", "hi"]  # children of the copied table
        assert len(ws.analytics.turns()) == 1
    finally:
        ws.close()
    con = sqlite3.connect(db)
    assert con.execute("SELECT name, colour FROM agents").fetchall() == [("veteran", "grey")]
    assert con.execute("SELECT count(*) FROM messages").fetchone()[0] == 2
    assert con.execute("PRAGMA foreign_key_check").fetchall() == []
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    store = Store.open(f"sqlite:///{db}")  # foreign keys are back on for normal use
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    store.close()


@pytest.mark.sqlite_only("SQLite migrates itself; PostgreSQL's explicit migrations: tests/store/test_postgres.py")
def test_a_database_from_a_newer_ironspire_is_refused_untouched(open_ws: Any, tmp_path: Path) -> None:
    home = tmp_path / "future"
    home.mkdir()
    _initial_database(home / "ironspire.db")
    con = sqlite3.connect(home / "ironspire.db")
    with con:
        con.execute("UPDATE alembic_version SET version_num = '0099'")
    con.close()
    before = _dump(home / "ironspire.db")
    with pytest.raises(ConfigurationError, match=r"'0099'.*newer"):
        open_ws(home)
    assert _dump(home / "ironspire.db") == before


def _dump(path: Path) -> list[str]:
    con = sqlite3.connect(path)
    try:
        return list(con.iterdump())
    finally:
        con.close()
