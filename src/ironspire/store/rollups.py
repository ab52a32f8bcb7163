"""Daily rollups: what keeps the Analytics panel interactive over millions of ledger rows.

The ledger stays append-only; nothing counts per request. Once a day is over (plus ``GRACE``
for a commit that was in flight at midnight), its rows are aggregated into ``usage_daily`` by
one INSERT ... SELECT ... GROUP BY (on PostgreSQL over that month's partition only), and a
watermark (``usage_rollup.until``) moves past it. A query over a period reads the whole days
inside the watermark from the rollup and only the partial days at its edges, and everything
after the watermark, from the ledger itself: the same sums as over the raw rows (tested on
both engines), at the cost of a few thousand rollup rows instead of millions of ledger rows.

The first query after a day closes rolls it up; rows written into days already rolled up (an
imported ledger) move the watermark back to their first day, which is then rolled up again.
Queries for one session read the ledger (a session is recent and small).
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Float,
    Integer,
    Select,
    case,
    cast,
    delete,
    func,
    insert,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.sql.expression import ColumnElement

from ironspire.store.schema import TOKEN_COLUMNS, agents, usage, usage_daily, usage_rollup

DAY = 86400.0
#: how long after midnight a day is still open to late commits
GRACE = 3600.0


def floor_day(t: float) -> float:
    return math.floor(t / DAY) * DAY


def ceil_day(t: float) -> float:
    return math.ceil(t / DAY) * DAY


def day_of(postgres: bool) -> ColumnElement[Any]:
    """The UTC midnight (Unix time) of a ledger row, in the engine's own SQL."""
    if postgres:
        return cast(func.floor(cast(func.extract("epoch", usage.c.at), Float) / DAY) * DAY, Float)
    return cast(cast(usage.c.at / DAY, Integer) * DAY, Float)  # times are positive: truncation is floor


def _lock(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        from ironspire.store.postgres import SCHEMA_NAMESPACE

        conn.execute(text("SELECT pg_advisory_xact_lock(:ns, 2)"), {"ns": SCHEMA_NAMESPACE})


def watermark(conn: Connection) -> float:
    return float(conn.execute(select(usage_rollup.c.until).where(usage_rollup.c.id == 1)).scalar_one())


def refresh(conn: Connection, now: float) -> float:
    """Rolls up every closed day not rolled up yet; returns the watermark (in the caller's
    transaction, behind a lock on PostgreSQL so that two processes never roll up one day twice)."""
    target = floor_day(now - GRACE)
    if watermark(conn) >= target:
        return watermark(conn)
    _lock(conn)
    until = watermark(conn)  # again, under the lock: another process may have just done it
    if until >= target:
        return until
    start = until
    if start <= 0:
        first = conn.execute(select(func.min(usage.c.at))).scalar()
        start = floor_day(float(first)) if first is not None else target
    ok = usage.c.outcome == "ok"
    unknown = case((ok & (usage.c.usage_state == "unknown"), 1), else_=0)
    day = day_of(conn.dialect.name == "postgresql")
    rows = (
        select(
            day.label("day"), usage.c.agent_id, usage.c.provider, usage.c.model, ok.label("ok"),
            func.count(usage.c.id), *(func.sum(usage.c[c]) for c in TOKEN_COLUMNS), func.sum(unknown),
            func.coalesce(func.sum(usage.c.cost_usd), 0.0),
            func.sum(func.coalesce(usage.c.api_cost_usd, 0.0)), func.sum(usage.c.latency_s), func.min(usage.c.at),
        )
        .where(usage.c.at >= start, usage.c.at < target)
        .group_by(day, usage.c.agent_id, usage.c.provider, usage.c.model, ok)
    )
    columns = ["day", "agent_id", "provider", "model", "ok", "requests", *TOKEN_COLUMNS, "unknown_usage", "cost_usd",
               "api_cost_usd", "latency_s", "first_at"]
    conn.execute(insert(usage_daily).from_select(columns, rows))
    conn.execute(update(usage_rollup).where(usage_rollup.c.id == 1).values(until=target))
    return target


def invalidate(conn: Connection, since: float) -> None:
    """Ledger rows were added at ``since`` or later into days that may be rolled up already."""
    day = floor_day(since)
    if watermark(conn) <= day:
        return
    _lock(conn)
    conn.execute(delete(usage_daily).where(usage_daily.c.day >= day))
    conn.execute(update(usage_rollup).where(usage_rollup.c.id == 1).values(until=day))


def totals_query(
    where_raw: list[ColumnElement[bool]], where_daily: list[ColumnElement[bool]], keys: tuple[Any, Any] | None,
    start: float | None, end: float | None, until: float,
) -> Select[Any] | None:
    """The same sums as over the raw rows, from the rollup for whole days below ``until`` and from
    the ledger for the rest; None when no whole day of the window is rolled up (read it raw).

    ``keys`` is the group column over the ledger and over the rollup (joined to agents), or None.
    """
    low = ceil_day(start) if start is not None else 0.0
    high = min(floor_day(end) if end is not None else until, until)
    if high <= low:
        return None
    ok = case((usage.c.outcome == "ok", 1), else_=0)
    raw_key, daily_key = keys if keys is not None else (None, None)

    def raw(*bounds: ColumnElement[bool]) -> Select[Any]:
        return select(
            *([raw_key.label("key")] if raw_key is not None else []), agents.c.name.label("agent"),
            func.count(usage.c.id).label("requests"), func.sum(ok).label("ok"),
            *(func.sum(usage.c[c]).label(c) for c in TOKEN_COLUMNS),
            func.sum(case(((usage.c.outcome == "ok") & (usage.c.usage_state == "unknown"), 1), else_=0))
            .label("unknown_usage"),
            func.sum(usage.c.cost_usd).label("cost_usd"),
            func.sum(func.coalesce(usage.c.api_cost_usd, 0.0)).label("api_cost_usd"),
            func.sum(case((usage.c.outcome == "ok", usage.c.latency_s), else_=0.0)).label("latency_ok"),
            func.min(usage.c.at).label("first_at"),
        ).select_from(usage.join(agents, agents.c.id == usage.c.agent_id)).where(*where_raw, *bounds).group_by(
            *([raw_key] if raw_key is not None else []), agents.c.name)

    daily_ok = case((usage_daily.c.ok, usage_daily.c.requests), else_=0)
    daily = select(
        *([daily_key.label("key")] if daily_key is not None else []), agents.c.name.label("agent"),
        func.sum(usage_daily.c.requests).label("requests"), func.sum(daily_ok).label("ok"),
        *(func.sum(usage_daily.c[c]).label(c) for c in TOKEN_COLUMNS),
        func.sum(usage_daily.c.unknown_usage).label("unknown_usage"),
        func.sum(usage_daily.c.cost_usd).label("cost_usd"), func.sum(usage_daily.c.api_cost_usd).label("api_cost_usd"),
        func.sum(case((usage_daily.c.ok, usage_daily.c.latency_s), else_=0.0)).label("latency_ok"),
        func.min(usage_daily.c.first_at).label("first_at"),
    ).select_from(usage_daily.join(agents, agents.c.id == usage_daily.c.agent_id)).where(
        *where_daily, usage_daily.c.day >= low, usage_daily.c.day < high).group_by(
        *([daily_key] if daily_key is not None else []), agents.c.name)

    parts = [daily]
    if start is not None and start < low:
        parts.append(raw(usage.c.at < low))
    parts.append(raw(usage.c.at >= high))
    u = union_all(*parts).subquery()

    def whole(column: Any) -> ColumnElement[Any]:
        return cast(func.coalesce(func.sum(column), 0), BigInteger)

    turns = whole(u.c.ok)
    query = select(
        *([u.c.key] if keys is not None else []),
        turns.label("turns"), (whole(u.c.requests) - turns).label("errors"),
        *(whole(u.c[c]).label(c) for c in TOKEN_COLUMNS),
        func.coalesce(func.sum(u.c.cost_usd), 0.0).label("cost_usd"),
        func.coalesce(func.sum(u.c.api_cost_usd), 0.0).label("api_cost_usd"),
        (func.sum(u.c.latency_ok) / func.nullif(cast(func.sum(u.c.ok), Float), 0.0)).label("avg_latency_s"),
        func.count(u.c.agent.distinct()).label("agents"),
        func.min(u.c.first_at).label("first_at"),
        whole(u.c.unknown_usage).label("unknown_usage"),
    )
    if keys is not None:
        query = query.group_by(u.c.key)
    return query

