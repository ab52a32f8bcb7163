"""The turn path's statements as SQLAlchemy Core, compiled once per engine.

A turn runs three statements: the sync check (configuration revision and the agent's last
message id), the messages insert and the ledger insert. The SQLite store runs them as plain
text on the standard library's sqlite3 (``store/sql.py``, so a turn needs no SQLAlchemy);
``tests/store`` checks that this text is what these definitions compile to, so the two cannot
drift. Another engine compiles them here with its own dialect.
"""

from __future__ import annotations

from sqlalchemy import bindparam, func, insert, literal_column, select
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.expression import ClauseElement

from ironspire.store.schema import MESSAGE_COLUMNS, USAGE_COLUMNS, messages, revision, usage


def sync_check() -> ClauseElement:
    rev = select(revision.c.config).where(revision.c.id == literal_column("1")).scalar_subquery()
    last = select(func.max(messages.c.id)).where(messages.c.agent_id == bindparam("agent_id")).scalar_subquery()
    return select(rev, last)


def insert_message() -> ClauseElement:
    return insert(messages).values({c: bindparam(c) for c in MESSAGE_COLUMNS})


def insert_usage() -> ClauseElement:
    return insert(usage).values({c: bindparam(c) for c in USAGE_COLUMNS})


def compiled(dialect: Dialect) -> dict[str, str]:
    """The three statements' SQL text for ``dialect`` (positional parameters in column order)."""
    return {name: str(make().compile(dialect=dialect))
            for name, make in (("sync_check", sync_check), ("insert_message", insert_message),
                               ("insert_usage", insert_usage))}
