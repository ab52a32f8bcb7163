"""The turn path's statements as SQLAlchemy Core, compiled once per engine.

A turn runs three statements: the sync check (configuration revision and the agent's last
message id), the messages insert and the ledger insert (``insert_turn_usage``: the request's
columns, its place in the turn's route chain and the turn's user message id). Opening a workspace and preparing a
turn read the configuration, the agent, its history and (with a budget) the spend: ``READS``.
The SQLite store runs all of them as plain text on the standard library's sqlite3
(``store/sql.py``, so opening a workspace and running a turn need no SQLAlchemy);
``tests/workspace/test_store.py`` checks that this text is what these definitions compile to,
so the two cannot drift. Another engine executes these definitions through SQLAlchemy.

Constants are ``literal_column`` so that the only parameters are the named ones a caller passes.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any, cast

from sqlalchemy import Executable, Integer, Select, bindparam, case, func, insert, literal_column, select
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.expression import ClauseElement

from ironspire.store.schema import (
    MESSAGE_COLUMNS,
    TURN_USAGE_COLUMNS,
    USAGE_COLUMNS,
    agents,
    custom_endpoints,
    health_transitions,
    messages,
    provider_settings,
    providers,
    revision,
    settings,
    usage,
)


def sync_check() -> ClauseElement:
    rev = select(revision.c.config).where(revision.c.id == literal_column("1")).scalar_subquery()
    last = select(func.max(messages.c.id)).where(messages.c.agent_id == bindparam("agent_id")).scalar_subquery()
    return select(rev, last)


def insert_message() -> ClauseElement:
    return insert(messages).values({c: bindparam(c) for c in MESSAGE_COLUMNS})


def insert_usage() -> ClauseElement:
    """A ledger row outside any turn (no turn, no place in a route chain): a bulk load's."""
    return insert(usage).values({c: bindparam(c) for c in USAGE_COLUMNS})


def insert_turn_usage() -> ClauseElement:
    """A turn's ledger row: ``TURN_USAGE_COLUMNS``, the turn log adding the last (``turn``)."""
    return insert(usage).values({c: bindparam(c) for c in TURN_USAGE_COLUMNS})


def compiled(dialect: Dialect) -> dict[str, str]:
    """The turn path's statements' SQL text for ``dialect`` (positional parameters in column order)."""
    return {name: str(make().compile(dialect=dialect))
            for name, make in (("sync_check", sync_check), ("insert_message", insert_message),
                               ("insert_usage", insert_usage), ("insert_turn_usage", insert_turn_usage))}


# --- what opening a workspace and preparing a turn read (named parameters) -------------------


def config_revision() -> Executable:
    return select(revision.c.config).where(revision.c.id == literal_column("1"))


def settings_rows() -> Executable:
    return select(settings.c.key, settings.c.value)


def provider_rows() -> Executable:
    return select(providers.c.id, providers.c.enabled)


def provider_setting_rows() -> Executable:
    return select(provider_settings)


def custom_endpoint_rows() -> Executable:
    return select(custom_endpoints)


def agent_rows() -> Select[Any]:
    """Live agents, oldest first."""
    return select(agents.c.id, agents.c.name, agents.c.system, agents.c.provider, agents.c.model,
                  agents.c.effort).where(agents.c.deleted_at == literal_column("0")).order_by(agents.c.id)


def agent_by_name() -> Executable:
    return agent_rows().where(agents.c.name == bindparam("name"))


def transcript(*, ok_only: bool, newest: bool) -> Executable:
    """(id, body, status, created_at) of an agent's messages: oldest first, or (``newest``) the
    newest ``:limit`` newest first; ``ok_only`` leaves out the messages of failed turns."""
    query = select(messages.c.id, messages.c.body, messages.c.status, messages.c.created_at).where(
        messages.c.agent_id == bindparam("agent_id"))
    if ok_only:
        query = query.where(messages.c.status == literal_column("'ok'"))
    if newest:
        # an explicit OFFSET 0: SQLite's compiler would otherwise add one as an anonymous parameter
        return query.order_by(messages.c.id.desc()).limit(bindparam("limit", type_=Integer)).offset(
            literal_column("0"))
    return query.order_by(messages.c.id)


def message_counts() -> Executable:
    return select(messages.c.status, func.count()).where(messages.c.agent_id == bindparam("agent_id")).group_by(
        messages.c.status)


def spend(*, per_agent: bool) -> Executable:
    """Per provider since ``:start``: the cost charged and how many successful requests have no
    known cost; ``per_agent`` narrows it to ``:agent_id``."""
    unknown = case(((usage.c.outcome == literal_column("'ok'")) & usage.c.api_cost_usd.is_(None),
                    literal_column("1")), else_=literal_column("0"))
    query = (select(usage.c.provider, func.coalesce(func.sum(usage.c.cost_usd), literal_column("0.0")),
                    func.coalesce(func.sum(unknown), literal_column("0")))
             .where(usage.c.at >= bindparam("start")).group_by(usage.c.provider))
    if per_agent:
        query = query.where(usage.c.agent_id == bindparam("agent_id"))
    return query


def insert_transition() -> Executable:
    return insert(health_transitions).values(
        {c: bindparam(c) for c in ("at", "provider", "state_from", "state_to", "detail")})


#: every read above by the name of its text in ``store/sql.py`` (upper-cased there)
READS: dict[str, Callable[[], Executable]] = {
    "config_revision": config_revision,
    "settings": settings_rows,
    "providers": provider_rows,
    "provider_settings": provider_setting_rows,
    "custom_endpoints": custom_endpoint_rows,
    "agents": agent_rows,
    "agent_by_name": agent_by_name,
    "transcript": lambda: transcript(ok_only=False, newest=False),
    "transcript_ok": lambda: transcript(ok_only=True, newest=False),
    "transcript_newest": lambda: transcript(ok_only=False, newest=True),
    "transcript_ok_newest": lambda: transcript(ok_only=True, newest=True),
    "message_counts": message_counts,
    "spend": lambda: spend(per_agent=False),
    "spend_agent": lambda: spend(per_agent=True),
    "insert_transition": insert_transition,
}


@cache
def read(name: str) -> Executable:
    """``READS[name]``, built once (SQLAlchemy caches its compiled form by the statement's shape)."""
    return READS[name]()


def compiled_reads(dialect: Dialect) -> dict[str, str]:
    """``READS``' SQL text for ``dialect`` (``paramstyle="named"``: ``:name`` parameters)."""
    return {name: str(cast(ClauseElement, make()).compile(dialect=dialect)) for name, make in READS.items()}
