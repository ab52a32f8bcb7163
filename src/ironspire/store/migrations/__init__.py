"""Schema migrations: applied to head every time a SQLite workspace opens; on PostgreSQL only
by the explicit ``ironspire db upgrade``, and a process refuses a database at another revision.

Alembic costs a few hundred milliseconds to import, so opening a workspace first reads the
recorded revision with one query (on SQLite with sqlite3, ``store/sqlite.schema_state``, so
SQLAlchemy does not load either) and loads Alembic only when the database is behind (a new
file, or a newer Ironspire). ``HEAD`` must name the newest revision; a test checks it against
Alembic's own view of the scripts so the fast path cannot drift. A database stamped with a
revision these scripts do not know (written by a newer Ironspire) is refused, untouched.

Adding a migration (there is no alembic.ini: the workspace hands Alembic its connection):

1. Change the tables in ``store/schema.py``.
2. Add ``versions/NNNN_what_changed.py`` with ``revision = "NNNN"`` (the next number) and
   ``down_revision`` = the previous head, and write ``upgrade()`` (and ``downgrade()``) with
   ``alembic.op``. Alembic runs in batch mode (``render_as_batch``), so on SQLite use
   ``with op.batch_alter_table("agents") as batch: ...`` for anything beyond adding a nullable
   column or a table; give new NOT NULL columns a ``server_default`` so existing rows get a value.
   Alembic can draft it: ``alembic.command.revision(config, "what changed", autogenerate=True,
   rev_id="NNNN")`` with ``config`` built as in ``upgrade`` and pointed at a database at the
   previous head.
3. Set ``HEAD = "NNNN"`` below.
4. Run ``pytest tests/workspace/test_migrations.py``: it checks HEAD against the scripts, that
   the migrated schema equals the mapped classes (Alembic's compare_metadata finds no
   difference), and that a database made by the initial migration, with data in it, upgrades.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ironspire.errors import ConfigurationError

if TYPE_CHECKING:  # ``HEAD`` is read on every SQLite open, which needs no SQLAlchemy (store/sqlite.py)
    from sqlalchemy.engine import Engine

HEAD = "0009"
SCRIPTS = Path(__file__).resolve().parent


def current_revision(engine: Engine) -> str | None:
    from sqlalchemy import inspect, text

    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        value = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        return None if value is None else str(value)


def _known_revisions() -> set[str]:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    return {script.revision for script in ScriptDirectory.from_config(config).walk_revisions()}


def _refuse_newer(current: str) -> ConfigurationError:
    return ConfigurationError(
        f"the workspace database is at schema revision {current!r}, which this Ironspire does not know "
        "(it was written by a newer version); it was left untouched.",
        hint="Upgrade Ironspire, or point IRONSPIRE_HOME (or the database URL) at another database.",
    )


def check_current(engine: Engine) -> None:
    """Refuses a shared database whose schema is not this Ironspire's (PostgreSQL: migrating is
    the explicit `ironspire db upgrade`, never a side effect of one worker starting)."""
    current = current_revision(engine)
    if current == HEAD:
        return
    if current is None:
        raise ConfigurationError(
            "the workspace database has no Ironspire schema yet (it was never migrated).",
            hint="Run `ironspire db upgrade` once against it (with the same --database or IRONSPIRE_DATABASE_URL).",
        )
    if current not in _known_revisions():
        raise _refuse_newer(current)
    raise ConfigurationError(
        f"the workspace database is at schema revision {current!r}; this Ironspire needs {HEAD!r}.",
        hint="Run `ironspire db upgrade` (stop the other workers first if the change is large).",
    )


def upgrade(engine: Engine) -> None:
    """Brings the database to head (no-op, and no Alembic import, when it is already there)."""
    current = current_revision(engine)
    if current == HEAD:
        if engine.dialect.name == "postgresql":
            from ironspire.store import postgres

            postgres.ensure_partitions(engine)
        return
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine, event
    from sqlalchemy.pool import NullPool

    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    if current is not None and current not in _known_revisions():
        raise _refuse_newer(current)
    if engine.dialect.name == "postgresql":
        _upgrade_postgres(engine, config, command)
        return
    # Migrations run with foreign keys off, on a connection of their own: Alembic's batch mode
    # rebuilds a SQLite table by copying it and dropping the original, and with foreign keys on
    # that DROP would cascade (dropping `agents` deletes every message). The check before the
    # commit makes sure the copy left no dangling reference instead.
    migrator = create_engine(engine.url, poolclass=NullPool)
    event.listen(migrator, "connect", _foreign_keys_off)
    try:
        with migrator.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
            dangling = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if dangling:
                raise ConfigurationError(
                    f"a schema migration would leave {len(dangling)} dangling reference(s) "
                    f"(first: {tuple(dangling[0])}); nothing was changed.",
                    hint="Report this with the Ironspire version; keep a `ironspire backup` of the state.",
                )
    finally:
        migrator.dispose()


def _upgrade_postgres(engine: Engine, config: Any, command: Any) -> None:
    """One transaction (PostgreSQL's DDL is transactional: a failed step leaves the old schema),
    behind an advisory lock so that two `db upgrade`s at once run one after the other."""
    from ironspire.store import postgres

    with engine.begin() as conn:
        postgres.lock_for_migration(conn)
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
    postgres.ensure_partitions(engine)


def _foreign_keys_off(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=OFF")  # outside any transaction, where SQLite honours it
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def script_head() -> str | None:
    """Alembic's head revision, read from the scripts (for the drift test)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    return ScriptDirectory.from_config(config).get_current_head()
