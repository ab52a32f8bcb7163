"""Schema migrations, applied to head every time a workspace opens.

Alembic costs a few hundred milliseconds to import, so opening a workspace first reads the
recorded revision with one query and loads Alembic only when the database is behind (a new
file, or a newer Ironspire). ``HEAD`` must name the newest revision; a test checks it against
Alembic's own view of the scripts so the fast path cannot drift.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

HEAD = "0001"
SCRIPTS = Path(__file__).resolve().parent


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        value = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        return None if value is None else str(value)


def upgrade(engine: Engine) -> None:
    """Brings the database to head (no-op, and no Alembic import, when it is already there)."""
    if current_revision(engine) == HEAD:
        return
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


def script_head() -> str | None:
    """Alembic's head revision, read from the scripts (for the drift test)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    return ScriptDirectory.from_config(config).get_current_head()
