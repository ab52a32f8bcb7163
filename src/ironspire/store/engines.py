"""Which database a workspace uses, and how its engine is made and its schema checked.

SQLite in IRONSPIRE_HOME is the default; a URL (``--database URL`` or IRONSPIRE_DATABASE_URL)
names another. PostgreSQL is reached through psycopg 3 only: ``postgresql://`` and
``postgres://`` mean ``postgresql+psycopg://``, any other driver is refused, so that there is
one tested path. Passwords belong in libpq's own places (``~/.pgpass``, PGPASSWORD) rather than
in the URL; a URL that carries one is never printed with it.

Migrations stay automatic on SQLite (one user, one file). On PostgreSQL several processes and
hosts share the schema, so changing it is an explicit step (``ironspire db upgrade``) and a
process opening a database at another revision refuses it, naming the step that fixes it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from ironspire.errors import ConfigurationError
from ironspire.store.sqlite import DB_NAME

if TYPE_CHECKING:  # SQLAlchemy loads with the first engine: an up-to-date SQLite workspace never needs one
    from sqlalchemy.engine import URL, Engine

#: the environment variable that picks the database (a SQLAlchemy URL); default: SQLite in the home
ENV = "IRONSPIRE_DATABASE_URL"
_POSTGRES_SCHEMES = {"postgresql", "postgres", "postgresql+psycopg"}


def sqlite_path(text: str) -> Path | None:
    """The file of a plain ``sqlite:///PATH`` URL, read without SQLAlchemy (what ``parse`` makes
    of it: ``tests/workspace/test_store.py`` compares the two); None for any other URL, which
    ``parse`` reads."""
    text = text.strip()
    if not text.startswith("sqlite:///"):
        return None
    database = text[len("sqlite:///"):]
    if not database or database == ":memory:" or any(c in database for c in "?#%@"):
        return None
    return Path(database)


def shown(url: URL | str) -> str:
    """A URL as it may be printed: never with its password."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    if isinstance(url, str):
        try:
            url = make_url(url)
        except ArgumentError:
            return "<unparseable URL>"
    return url.render_as_string(hide_password=True)


def parse(text: str) -> URL:
    """A database URL the store can use, or a ConfigurationError saying what to write instead."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    text = text.strip()
    if text.startswith("postgres://"):
        text = "postgresql://" + text[len("postgres://"):]
    try:
        url = make_url(text)
    except ArgumentError:
        raise ConfigurationError(
            f"{shown(text)!r} is not a database URL.",
            hint="Use postgresql+psycopg://USER@HOST:PORT/DATABASE, or sqlite:///PATH/ironspire.db.",
        ) from None
    if url.drivername in _POSTGRES_SCHEMES:
        url = url.set(drivername="postgresql+psycopg")
        if not url.database:
            raise ConfigurationError(
                f"the database URL {shown(url)!r} names no database.",
                hint="Add it after the host: postgresql+psycopg://USER@HOST:PORT/ironspire.",
            )
        return url
    if url.drivername == "sqlite":
        if not url.database or url.database == ":memory:":
            raise ConfigurationError(
                "an in-memory SQLite database would lose the workspace when the process ends.",
                hint="Use sqlite:///PATH/ironspire.db, or leave the URL unset for IRONSPIRE_HOME.",
            )
        return url
    raise ConfigurationError(
        f"the database URL {shown(url)!r} uses {url.drivername!r}, which Ironspire does not support.",
        hint="Use postgresql+psycopg://... (PostgreSQL through psycopg 3) or sqlite:///PATH.",
    )


def resolve(home: Path, explicit: str | None = None) -> URL:
    """The URL in force: the explicit one, else IRONSPIRE_DATABASE_URL, else SQLite in ``home``."""
    from sqlalchemy.engine import make_url

    text = explicit if explicit is not None else os.environ.get(ENV, "").strip() or None
    if text is None:
        return make_url(f"sqlite:///{home / DB_NAME}")
    return parse(text)


def is_postgres(url: URL | Engine) -> bool:
    from sqlalchemy.engine import Engine

    return (url.url if isinstance(url, Engine) else url).get_backend_name() == "postgresql"


def make_engine(url: URL) -> Engine:
    """An engine with the settings the store relies on (WAL and foreign keys on SQLite; a small
    pre-pinged pool and UTC sessions on PostgreSQL)."""
    from sqlalchemy import create_engine, event

    if not is_postgres(url):
        from ironspire.store import sqlite

        assert url.database is not None
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)  # a new file's folder
        engine = create_engine(url)
        event.listen(engine, "connect", sqlite.on_connect)
        return engine
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise ConfigurationError(
            "the workspace database is PostgreSQL, but psycopg 3 is not installed.",
            hint="Run `pip install 'ironspire[postgres]'`.",
        ) from None
    return create_engine(
        url, pool_size=5, max_overflow=10, pool_pre_ping=True,
        connect_args={"options": "-c timezone=UTC", "application_name": "ironspire", "connect_timeout": 10},
    )


def open_engine(url: URL) -> Engine:
    """An engine on a database whose schema is this Ironspire's: migrated here on SQLite,
    checked (never changed) on PostgreSQL."""
    from ironspire.store import migrations

    engine = make_engine(url)
    try:
        if is_postgres(url):
            _check_reachable(engine, url)
            migrations.check_current(engine)
        else:
            migrations.upgrade(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine


def upgrade(url: URL) -> tuple[str | None, str]:
    """``ironspire db upgrade``: brings the database to this Ironspire's schema.

    Returns (revision before, revision after).
    """
    from ironspire.store import migrations

    engine = make_engine(url)
    try:
        if is_postgres(url):
            _check_reachable(engine, url)
        before = migrations.current_revision(engine)
        migrations.upgrade(engine)
        # the explicit step also pays for summing a large ledger (the Analytics panel's daily and
        # hourly sums), which the first read would otherwise do: seconds for a million rows
        if is_postgres(url):
            import time

            from ironspire.store import rollups

            with engine.begin() as conn:
                rollups.refresh(conn, time.time())
        from ironspire.store.ledger import Ledger

        Ledger(engine, postgres=is_postgres(url)).refresh()
        return before, migrations.HEAD
    finally:
        engine.dispose()


def upgrade_url(url: str) -> None:
    upgrade(parse(url))


def _check_reachable(engine: Engine, url: URL) -> None:
    from sqlalchemy.exc import OperationalError

    try:
        with engine.connect():
            pass
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
        raise ConfigurationError(
            f"cannot reach the workspace database {shown(url)}: {reason}",
            hint="Check that PostgreSQL is running there and the URL's user, host, port and database are right "
            f"(--database or {ENV}).",
        ) from None
