"""The Analytics panel's queries over the ledger, aggregated by the database.

Every tab asks the database for its figures already summed, bucketed or ranked (GROUP BY,
window functions, LIMIT/OFFSET) and never pulls a period's rows into Python: a 90-day ledger of
a million requests is read through ``ix_usage_at_cover`` (migration 0005), the index that holds
every column an aggregate needs. Raw rows leave only page by page (``turns_page``) or as a stream
(``iter_rows``: the CSV export, in constant memory).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import (
    Connection,
    Float,
    Integer,
    Select,
    Table,
    and_,
    case,
    cast,
    func,
    literal_column,
    or_,
    select,
    text,
    union,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlalchemy.sql.expression import ColumnElement

from ironspire.store import latency
from ironspire.store.rollups import day_of
from ironspire.store.schema import (
    TOKEN_COLUMNS,
    agents,
    health_transitions,
    usage,
    usage_daily_agent,
    usage_daily_detail,
    usage_daily_detail_state,
    usage_daily_latency,
    usage_daily_route,
    usage_hourly_agent,
    usage_hourly_route,
)


@dataclass(frozen=True, slots=True)
class UsageFilter:
    """Which ledger rows: ``start`` inclusive, ``end`` exclusive (Unix times), a session, an
    agent (by name: every agent that ever had it), a provider, a set of providers (``providers``:
    ids, or a prefix ending in ``*`` such as ``custom-*``: a provider group) and an outcome
    (``ok``, ``error`` for every failure, ``fallback`` (``FALLBACK``) for the successful requests
    of fallback routes, or one outcome such as ``RateLimitError``); None means any.

    ``fallback`` is a question about a row's place in its turn, which the daily and hourly sums
    do not keep: a filter with it is always answered from the rows (``summed``)."""

    start: float | None = None
    end: float | None = None
    session: str | None = None
    agent: str | None = None
    provider: str | None = None
    providers: tuple[str, ...] | None = None
    outcome: str | None = None


def usage_where(f: UsageFilter) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    # the fallback answers are ~1% of the rows and ix_usage_fallback_at holds only them: a
    # provider compared through `|| ''` keeps SQLite from walking ix_usage_provider_at over
    # every request of the provider instead (130 -> a few ms for a group over 90 days)
    provider: Any = usage.c.provider.concat("") if f.outcome == FALLBACK else usage.c.provider
    if f.start is not None:
        where.append(usage.c.at >= f.start)
    if f.end is not None:
        where.append(usage.c.at < f.end)
    if f.session is not None:
        where.append(usage.c.session == f.session)
    if f.agent is not None:
        # through the agents table by id, so the per-agent index serves it
        where.append(usage.c.agent_id.in_(select(agents.c.id).where(agents.c.name == f.agent)))
    if f.provider is not None:
        where.append(provider == f.provider)
    if f.providers is not None:
        where.append(_provider_in(provider, f.providers))
    if f.outcome == FALLBACK:
        # the predicate of ix_usage_fallback_at, and the outcome through `|| ''`: a bare outcome
        # would let SQLite walk ix_usage_outcome_at over every successful request of the period
        # to find the few that a fallback route answered
        where += [_FALLBACK_ROW, usage.c.outcome.concat("") == "ok"]
    elif f.outcome is not None:
        where.append(_outcome_is(usage.c.outcome, f.outcome))
    return where


def summed(f: UsageFilter) -> bool:
    """Whether the daily and hourly sums can answer ``f``: they are summed by outcome, not by
    a row's place in its turn."""
    return f.outcome != FALLBACK


def _provider_in(column: Any, providers: tuple[str, ...]) -> ColumnElement[bool]:
    """``column`` is one of ``providers`` (ids, or prefixes ending in ``*``)."""
    exact = [p for p in providers if not p.endswith("*")]
    return or_(column.in_(exact), *(column.startswith(p[:-1]) for p in providers if p.endswith("*")))


def _outcome_is(column: ColumnElement[str], outcome: str) -> ColumnElement[bool]:
    """``error`` is every failure; anything else one outcome."""
    return column != "ok" if outcome == "error" else column == outcome


_OK = usage.c.outcome == "ok"
#: the outcome filter for a turn's answer on a fallback route (see ``UsageFilter``)
FALLBACK = "fallback"
#: a request to a fallback route: the predicate of the partial indexes over them (schema.py),
#: its 0 written into the SQL (a bound parameter would keep the planner from matching it)
_FALLBACK_ROW = usage.c.attempt > literal_column("0")
DAY = 86400.0
HOUR = 3600.0
#: ledger row ids the daily sums take in per transaction
REFRESH_CHUNK = 200_000
#: up to this many rows a percentile is ranked in memory; past it, by offset along ix_usage_latency
SORT_IN_MEMORY = 20_000
#: the sums both sources give, merged by adding (``finish`` derives the rest)
SUMS = ("requests", "turns", *TOKEN_COLUMNS, "cost_usd", "cost_unknown", "api_cost_usd", "api_cost_unknown",
        "usage_unknown", "usage_estimated", "latency_ok")


def _count(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


#: what a chart needs per bucket: the fewer sums, the faster a week of rows is read
SERIES_SUMS = ("requests", "turns", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
               "reasoning_tokens", "cost_usd", "cost_unknown", "usage_unknown", "latency_ok")


def _only(columns: list[ColumnElement[Any]], names: tuple[str, ...]) -> list[ColumnElement[Any]]:
    """The columns named ``names``, in that order (every query of one aggregate lines up)."""
    by_name = {c.name: c for c in columns}
    return [by_name[n] for n in names]


def _raw_sums() -> list[ColumnElement[Any]]:
    state = func.coalesce(usage.c.usage_state, "reported")
    return [
        func.count().label("requests"),
        _count(_OK).label("turns"),
        *(func.coalesce(func.sum(usage.c[c]), 0).label(c) for c in TOKEN_COLUMNS),
        func.coalesce(func.sum(usage.c.cost_usd), 0.0).label("cost_usd"),
        _count(and_(_OK, usage.c.cost_usd.is_(None))).label("cost_unknown"),
        func.coalesce(func.sum(usage.c.api_cost_usd), 0.0).label("api_cost_usd"),
        _count(and_(_OK, usage.c.api_cost_usd.is_(None))).label("api_cost_unknown"),
        _count(and_(_OK, state == "unknown")).label("usage_unknown"),
        _count(and_(_OK, state == "estimated")).label("usage_estimated"),
        func.coalesce(func.sum(case((_OK, usage.c.latency_s), else_=0.0)), 0.0).label("latency_ok"),
    ]


def _daily_sums(table: Table) -> list[ColumnElement[Any]]:
    d = table.c
    if "turns" in d:  # the successful requests' sums are columns of their own there
        return [func.coalesce(func.sum(d[name]), 0).label(name) for name in SUMS]
    ok = d.outcome == "ok"

    def when(condition: ColumnElement[bool], value: Any) -> ColumnElement[Any]:
        return func.coalesce(func.sum(case((condition, value), else_=0)), 0)

    return [
        func.coalesce(func.sum(d.requests), 0).label("requests"),
        when(ok, d.requests).label("turns"),
        *(func.coalesce(func.sum(d[c]), 0).label(c) for c in TOKEN_COLUMNS),
        func.coalesce(func.sum(d.cost_usd), 0.0).label("cost_usd"),
        when(ok, d.cost_null).label("cost_unknown"),
        func.coalesce(func.sum(d.api_cost_usd), 0.0).label("api_cost_usd"),
        when(ok, d.api_null).label("api_cost_unknown"),
        when(and_(ok, d.usage_state == "unknown"), d.requests).label("usage_unknown"),
        when(and_(ok, d.usage_state == "estimated"), d.requests).label("usage_estimated"),
        when(ok, d.latency_sum).label("latency_ok"),
    ]


def finish(sums: dict[str, Any]) -> dict[str, Any]:
    """A group's figures from merged sums: ``errors`` and ``avg_latency_s`` (None without
    successes), when the sums they derive from were asked for."""
    out = dict(sums)
    if "requests" in sums and "turns" in sums:
        out["errors"] = int(sums["requests"]) - int(sums["turns"])
    if "latency_ok" in sums and "turns" in sums:
        out["avg_latency_s"] = float(sums["latency_ok"]) / int(sums["turns"]) if sums["turns"] else None
    return out


def measures() -> list[ColumnElement[Any]]:
    """The sums every breakdown reports over raw rows (see ``Store.ledger_totals``)."""
    return _raw_sums()


Key = Literal["agent_id", "provider", "model", "outcome", "bucket"]


class Ledger:
    """The panel's queries (``Store.ledger``).

    Aggregates split the filter's time range at UTC midnights: whole days come from
    the smallest of the daily sums that holds what is asked (``_daily_table``; brought up to
    date with the ledger first, in one write transaction, so two processes never sum a row
    twice), the partial days at the edges from ``usage`` itself, and the two are added. A
    session filter reads ``usage`` only (sessions are not summed by day).
    The same queries run on SQLite and PostgreSQL (only the day and bucket arithmetic on ``at``,
    a float there and a timestamptz here, and the upsert's dialect differ).
    """

    def __init__(self, engine: Engine, *, postgres: bool = False) -> None:
        self.engine = engine
        self.postgres = postgres

    # --- the daily sums ----------------------------------------------------------------------

    def refresh(self) -> int:
        """Adds the ledger rows not yet summed to ``usage_daily_detail``, ``usage_daily_route``,
        ``usage_daily_agent``, ``usage_hourly_agent`` and ``usage_hourly_route``, and their
        latencies to ``usage_daily_latency``; returns how many there were. ``REFRESH_CHUNK`` row
        ids per transaction, so that summing a large ledger for the first time never holds the
        ledger's writers up for long."""
        state = usage_daily_detail_state.c
        with self.engine.connect() as conn:
            last, newest = conn.execute(select(state.last_id, select(func.max(usage.c.id)).scalar_subquery())
                                        .where(state.id == 1)).one()
        if newest is None or newest <= last:
            return 0
        total = 0
        while True:
            done, more = self._refresh_chunk()
            total += done
            if not more:
                return total

    def _refresh_chunk(self) -> tuple[int, bool]:
        """Sums the next ``REFRESH_CHUNK`` row ids; returns how many and whether rows are left."""
        state = usage_daily_detail_state.c
        with self.engine.begin() as conn:
            # the write lock first, then the watermark: a second process waits here and then sees ours
            conn.execute(update(usage_daily_detail_state).where(state.id == 1).values(last_id=state.last_id))
            if self.postgres:
                # ids come from a sequence: a transaction still in flight may hold a smaller id than
                # one already committed, and a watermark past it would never sum its row. SHARE mode
                # waits for every transaction that wrote to the ledger (readers go on).
                conn.execute(text("LOCK TABLE usage IN SHARE MODE"))
            last = int(conn.execute(select(state.last_id).where(state.id == 1)).scalar_one())
            top = conn.execute(select(func.max(usage.c.id))).scalar()
            if top is None or top <= last:
                return 0, False
            newest = min(int(top), last + REFRESH_CHUNK)
            day = day_of(self.postgres)
            new = (usage.c.id > last, usage.c.id <= newest)
            statestr = func.coalesce(usage.c.usage_state, "reported")
            keys = [day.label("day"), usage.c.agent_id, usage.c.provider, usage.c.model, usage.c.outcome,
                    statestr.label("usage_state")]
            values = [
                func.count(), *(func.sum(usage.c[c]) for c in TOKEN_COLUMNS),
                func.coalesce(func.sum(usage.c.cost_usd), 0.0), _count(usage.c.cost_usd.is_(None)),
                func.coalesce(func.sum(usage.c.api_cost_usd), 0.0), _count(usage.c.api_cost_usd.is_(None)),
                func.sum(usage.c.latency_s),
            ]
            names = ["day", "agent_id", "provider", "model", "outcome", "usage_state", "requests", *TOKEN_COLUMNS,
                     "cost_usd", "cost_null", "api_cost_usd", "api_null", "latency_sum"]
            self._add(conn, usage_daily_detail, names, 6, select(*keys, *values).where(*new).group_by(*keys))
            route = [k for k in keys if k.name != "agent_id"]
            self._add(conn, usage_daily_route, [n for n in names if n != "agent_id"], 5,
                      select(*route, *values).where(*new).group_by(*route))
            by_agent = keys[:3]  # day, agent, provider
            self._add(conn, usage_daily_agent, ["day", "agent_id", "provider", *SUMS], 3,
                      select(*by_agent, *_raw_sums()).where(*new).group_by(*by_agent))
            hour = _floor_at(HOUR, self.postgres).label("hour")
            for table, group in ((usage_hourly_agent, [hour, usage.c.agent_id, usage.c.provider]),
                                 (usage_hourly_route, [hour, usage.c.provider])):
                self._add(conn, table, [*(g.name for g in group), *SUMS], len(group),
                          select(*group, *_raw_sums()).where(*new).group_by(*group))
            slot = latency.bucket_sql(usage.c.latency_s, self.postgres)
            keys = [usage.c.provider, slot.label("bucket"), day.label("day")]
            self._add(conn, usage_daily_latency, ["provider", "bucket", "day", "requests"], 3,
                      select(*keys, func.count()).where(*new, _OK).group_by(*keys))
            conn.execute(update(usage_daily_detail_state).where(state.id == 1).values(last_id=newest))
            return newest - last, newest < int(top)

    def _add(self, conn: Connection, table: Table, names: list[str], keys: int, source: Select[Any]) -> None:
        """INSERT ... SELECT that adds onto the rows already there (an upsert; both engines have one)."""
        insert = pg_insert if self.postgres else sqlite_insert
        add = insert(table).from_select(names, source)
        conn.execute(add.on_conflict_do_update(index_elements=names[:keys],
                                               set_={c: table.c[c] + add.excluded[c] for c in names[keys:]}))

    def aggregate(self, f: UsageFilter, keys: tuple[Key, ...] = (), width: float | None = None,
                  sums: tuple[str, ...] = SUMS) -> list[dict[str, Any]]:
        """Sums (``SUMS``, then ``finish``) per group of ``keys`` over the filter; ``bucket``
        groups by time (``width`` seconds; whole days are read by day only when ``width`` is a
        multiple of a day)."""
        names = (*keys, *sums)
        return [finish(dict(zip(names, v, strict=True))) for v in self._merged(f, keys, width, sums).values()]

    def _merged(self, f: UsageFilter, keys: tuple[Key, ...], width: float | None,
                sums: tuple[str, ...]) -> dict[tuple[Any, ...], list[Any]]:
        """Per group, the row of keys then sums (in the order of ``sums``), added up over the
        daily sums and the raw edges. Tuples, not mappings: a 90-day chart merges tens of
        thousands of rows, and a mapping per row would cost more than the query."""
        merged: dict[tuple[Any, ...], list[Any]] = {}
        n = len(keys)
        with self.engine.connect() as conn:
            for query in self._queries(f, keys, width, sums):
                for row in conn.execute(query):
                    key = tuple(row[:n])
                    into = merged.get(key)
                    if into is None:
                        merged[key] = list(row)
                    else:
                        for i in range(n, n + len(sums)):
                            into[i] += row[i]
        return merged

    def _split(self, f: UsageFilter, width: float | None = None, grain: float = DAY
               ) -> tuple[tuple[float, float] | None, list[UsageFilter]]:
        """The filter's whole UTC days (``grain``: or hours; None: none, or a session, or a
        filter the sums cannot answer (``summed``), or buckets that are not whole ones), brought
        up to date in the sums, and the rest of its range as raw filters."""
        days: tuple[float, float] | None = None
        if f.session is None and summed(f) and (width is None or width % grain == 0):
            first = math.ceil(f.start / grain) * grain if f.start is not None else -math.inf
            if f.end is not None:
                last = math.floor(f.end / grain) * grain
            else:
                last = math.floor((time.time() + grain) / grain) * grain if f.start is not None else math.inf
            if last > first:
                days = (first, last)
        if days is None:
            return None, [f]
        self.refresh()
        fields = _fields(f)
        raw: list[UsageFilter] = []
        if f.start is not None and f.start < days[0]:
            raw.append(UsageFilter(**{**fields, "end": days[0]}))
        if days[1] != math.inf and (f.end is None or f.end > days[1]):
            raw.append(UsageFilter(**{**fields, "start": days[1]}))
        return days, raw

    def _queries(self, f: UsageFilter, keys: tuple[Key, ...], width: float | None,
                 sums: tuple[str, ...]) -> list[Any]:
        table: Table | None = _daily_table(f, keys)
        grain = DAY
        if width is not None and width % DAY and not width % HOUR:  # hourly buckets: the hourly sums, if they fit
            table, grain = _hourly_table(f, keys), HOUR
        days, raw_ranges = self._split(f, width, grain) if table is not None else (None, [f])
        out = []
        if days is not None and table is not None:
            where = _daily_where(f, days, table)
            group = [_daily_key(k, width, self.postgres, table) for k in keys]
            out.append(select(*group, *_only(_daily_sums(table), sums)).where(*where).group_by(*group))
        for part in raw_ranges:
            group = [_raw_key(k, width, self.postgres) for k in keys]
            out.append(select(*group, *_only(_raw_sums(), sums)).where(*usage_where(part)).group_by(*group))
        return out

    def agent_count(self, f: UsageFilter) -> int:
        """How many agents (by name: a recreated agent is one) made a request in the filter: the
        agent ids of its whole days from the daily sums, of its edges from the rows."""
        days, raw_ranges = self._split(f)
        parts: list[Select[Any]] = []
        if days is not None:
            table = _daily_table(f, ("agent_id",))
            parts.append(select(table.c.agent_id.label("agent_id")).where(*_daily_where(f, days, table)))
        parts += [select(usage.c.agent_id.label("agent_id")).where(*usage_where(part)) for part in raw_ranges]
        seen = union(*parts).subquery() if len(parts) > 1 else parts[0].subquery()
        query = select(func.count(agents.c.name.distinct())).where(agents.c.id.in_(select(seen.c.agent_id)))
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def series(self, f: UsageFilter, width: float, by: Literal["agent"] | None = None,
               sums: tuple[str, ...] = SERIES_SUMS) -> list[dict[str, Any]]:
        """Sums (``sums``: some of ``SERIES_SUMS``) per time bucket (``bucket``: its start, a
        multiple of ``width`` seconds), and per agent (``key``: the agent's name) with
        ``by="agent"``; oldest bucket first. The fewer the sums, the faster: a chart asks per
        agent only for what it stacks by agent."""
        keys: tuple[Key, ...] = ("bucket", "agent_id") if by == "agent" else ("bucket",)
        rows = self.aggregate(f, keys, width, sums)
        if by == "agent":
            names = self.agent_names()
            for r in rows:
                r["key"] = names.get(int(r["agent_id"]), str(r["agent_id"]))
        rows.sort(key=lambda r: r["bucket"])
        return rows

    def stacked(self, f: UsageFilter, width: float, column: str = "cost_usd") -> list[tuple[float, str, Any]]:
        """One sum (``column``, of ``SERIES_SUMS``) per time bucket and agent, as (bucket, agent
        name, value): what a chart stacks by agent, without a record per cell."""
        names = self.agent_names()
        return [(float(v[0]), names.get(int(v[1]), str(v[1])), v[2])
                for v in self._merged(f, ("bucket", "agent_id"), width, (column,)).values()]

    def stamp(self) -> int:
        """The newest ledger row's id (0 when empty): it changes with every request recorded."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.coalesce(func.max(usage.c.id), 0))).scalar_one())

    def _conn_rows(self, query: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(query))

    def agent_names(self) -> dict[int, str]:
        with self.engine.connect() as conn:
            return {int(i): str(n) for i, n in conn.execute(select(agents.c.id, agents.c.name))}

    def per_agent(self, f: UsageFilter) -> list[dict[str, Any]]:
        """One row per agent id with a request in the filter: its sums, its latest request's time
        and provider/model. The daily sums name each agent's last day with a matching request,
        so its latest is one short walk of ``ix_usage_agent_id_at`` over that day: one
        statement for every agent (a correlated subquery per agent), not a round trip each."""
        rows = self.aggregate(f, ("agent_id",))
        latest: dict[int, tuple[Any, ...]] = {}

        def newest(*where: ColumnElement[bool]) -> Select[Any]:
            return (select(usage.c.id).where(*usage_where(f), *where)
                    .order_by(usage.c.at.desc(), usage.c.id.desc()).limit(1))

        if f.session is None and summed(f) and rows:
            self.refresh()
            table = _daily_table(f, ("agent_id",))
            d = table.c
            # the days that overlap the filter: its edge days too
            overlap = (math.floor(f.start / DAY) * DAY if f.start is not None else -math.inf,
                       f.end if f.end is not None else math.inf)
            last = (select(d.agent_id.label("agent_id"), func.max(d.day).label("day"))
                    .where(*_daily_where(f, overlap, table)).group_by(d.agent_id).subquery("last"))
            pick = newest(usage.c.agent_id == last.c.agent_id, usage.c.at >= _as_time(last.c.day, self.postgres),
                          usage.c.at < _as_time(last.c.day + DAY, self.postgres)).correlate(last).scalar_subquery()
            found = usage.alias("found")
            query = select(found.c.agent_id, found.c.at, found.c.provider, found.c.model).where(
                found.c.id.in_(select(pick).select_from(last)))
            latest = {int(aid): (at, p, m) for aid, at, p, m in self._conn_rows(query)}
        with self.engine.connect() as conn:
            for r in rows:
                aid = int(r["agent_id"])
                if aid not in latest:  # that day's matching rows lie past the filter's edge: the whole range
                    row = conn.execute(select(usage.c.at, usage.c.provider, usage.c.model).where(
                        usage.c.id == newest(usage.c.agent_id == aid).scalar_subquery())).one()
                    latest[aid] = tuple(row)
            info = {int(i): (n, c, d) for i, n, c, d in conn.execute(
                select(agents.c.id, agents.c.name, agents.c.created_at, agents.c.deleted_at))}
        for r in rows:
            aid = int(r["agent_id"])
            name, created, deleted = info[aid]
            at, provider, model = latest[aid]
            r.update(agent=name, created_at=created, deleted_at=deleted, last_at=at, last_provider=provider,
                     last_model=model)
        rows.sort(key=lambda r: (r["agent"], r["agent_id"]))
        return rows

    def by_key(self, f: UsageFilter, by: Literal["provider", "model", "outcome"]) -> list[dict[str, Any]]:
        """Sums per provider, per ``provider/model`` (with ``provider`` and ``model`` apart) or per outcome."""
        keys: tuple[Key, ...] = (("provider", "model") if by == "model" else ("provider", "outcome")
                                 if by == "outcome" else ("provider",))
        return self.aggregate(f, keys)

    def latency_percentiles(self, f: UsageFilter, quantiles: tuple[float, ...] = (0.5, 0.95)
                            ) -> dict[str, dict[float, float]]:
        """Per provider, the latency (s) of successful requests at each quantile: the nearest-rank
        value (the ceil(q*n)-th smallest), exact. Without an agent or session filter the latency
        buckets (``store/latency.py``) find the bucket holding that rank and one walk of its slice
        of ``ix_usage_latency`` reads the value; an agent's or a session's few rows are ranked
        by their own index (``_percentiles_by_offset``)."""
        if f.agent is not None or f.session is not None:
            return self._percentiles_by_offset(f, quantiles)
        ok = UsageFilter(**{**_fields(f), "outcome": "ok"})
        days, raw_ranges = self._split(ok)
        queries: list[Any] = []
        if days is not None:
            d = usage_daily_latency.c
            where = [d.day >= days[0]] if days[0] != -math.inf else []
            where += [d.day < days[1]] if days[1] != math.inf else []
            if f.provider is not None:
                where.append(d.provider == f.provider)
            if f.providers is not None:
                where.append(_provider_in(d.provider, f.providers))
            queries.append(select(d.provider, d.bucket, func.sum(d.requests)).where(*where)
                           .group_by(d.provider, d.bucket))
        slot = latency.bucket_sql(usage.c.latency_s, self.postgres).label("bucket")
        for part in raw_ranges:
            # by the time index (provider and outcome through `|| ''`): a day's edge, not every
            # row of a provider along the latency index
            rest = UsageFilter(start=part.start, end=part.end)
            where = [*usage_where(rest), usage.c.outcome.concat("") == "ok"]
            if f.provider is not None:
                where.append(usage.c.provider.concat("") == f.provider)
            if f.providers is not None:
                where.append(_provider_in(usage.c.provider.concat(""), f.providers))
            queries.append(select(usage.c.provider, slot, func.count()).where(*where)
                           .group_by(usage.c.provider, slot))
        counts: dict[str, dict[int, int]] = {}
        out: dict[str, dict[float, float]] = {}
        with self.engine.connect() as conn:
            for query in queries:
                for provider, b, n in conn.execute(query):
                    into = counts.setdefault(str(provider), {})
                    into[int(b)] = into.get(int(b), 0) + int(n)
            for provider, buckets in counts.items():
                n = sum(buckets.values())
                for q in quantiles:
                    rank, below = nearest_rank(q, n), 0
                    for b in sorted(buckets):
                        if below + buckets[b] >= rank:
                            break
                        below += buckets[b]
                    low, high = latency.bounds(b)
                    where = [*usage_where(UsageFilter(start=f.start, end=f.end, provider=provider, outcome="ok"))]
                    where += [usage.c.latency_s >= low] if low is not None else []
                    where += [usage.c.latency_s < high] if high is not None else []
                    value = conn.execute(select(usage.c.latency_s).where(*where).order_by(usage.c.latency_s)
                                         .limit(1).offset(rank - below - 1)).scalar()
                    if value is not None:
                        out.setdefault(provider, {})[q] = float(value)
        return out

    def _percentiles_by_offset(self, f: UsageFilter, quantiles: tuple[float, ...]) -> dict[str, dict[float, float]]:
        """Nearest-rank percentiles read in latency order from ``ix_usage_latency`` with an
        offset (from the nearer end), or, for a few rows, ranked in memory."""
        ok = UsageFilter(**{**_fields(f), "outcome": "ok"})
        counts = {str(r["provider"]): int(r["turns"]) for r in self.aggregate(ok, ("provider",))}
        out: dict[str, dict[float, float]] = {}
        few = [p for p, n in counts.items() if 0 < n <= SORT_IN_MEMORY]
        with self.engine.connect() as conn:
            if few:  # few rows: read them all at once by the filter's own index and rank them here
                # provider and outcome through `|| ''`, which SQLite cannot match to an index: the
                # rows are found by the period's (or session's, or agent's) index, not by walking
                # every row of the provider along the latency index
                rest = UsageFilter(**{**_fields(ok), "provider": None, "outcome": None})
                query = select(usage.c.provider, usage.c.latency_s).where(
                    *usage_where(rest), usage.c.provider.concat("").in_(few), usage.c.outcome.concat("") == "ok")
                values: dict[str, list[float]] = {}
                for provider, v in conn.execute(query):
                    values.setdefault(str(provider), []).append(float(v))
                for provider, found in values.items():
                    found.sort()
                    out[provider] = {q: found[nearest_rank(q, len(found)) - 1] for q in quantiles}
            for provider, n in counts.items():
                if n <= SORT_IN_MEMORY:
                    continue
                where = [*usage_where(UsageFilter(**{**_fields(ok), "provider": provider}))]
                for q in quantiles:
                    rank = nearest_rank(q, n)
                    up = rank <= n - rank + 1
                    order = usage.c.latency_s.asc() if up else usage.c.latency_s.desc()
                    offset = rank - 1 if up else n - rank
                    value = conn.execute(select(usage.c.latency_s).where(*where)
                                         .order_by(order).limit(1).offset(offset)).scalar()
                    if value is not None:
                        out.setdefault(provider, {})[q] = float(value)
        return out

    def turns_page(self, f: UsageFilter, *, limit: int, offset: int = 0) -> tuple[int, list[dict[str, Any]]]:
        """The matching rows' count and one page of them, newest first.

        A provider group is read as one arm per provider, merged (UNION ALL ... ORDER BY): each
        arm walks ``ix_usage_provider_at`` backwards, already in the page's order, so the page
        costs its offset plus its length; one IN list over that index would sort the whole
        period's rows of the group for every page."""
        total = sum(int(r["requests"]) for r in self.aggregate(f))

        def page_of(where: list[ColumnElement[bool]]) -> Select[Any]:
            return (select(usage.c.id.label("id"), *_row_columns())  # labelled: a compound orders by name
                    .select_from(usage.join(agents, agents.c.id == usage.c.agent_id)).where(*where))

        query: Any
        if f.providers is None or f.outcome == FALLBACK:
            # the fallback answers are few (the partial ix_usage_fallback_at holds only them):
            # walking them newest first and keeping the group's is cheaper than walking each
            # provider's every row, which a group's arms would do for a period with few of them
            query = page_of(usage_where(f)).order_by(usage.c.at.desc(), usage.c.id.desc())
        else:
            rest = usage_where(UsageFilter(**{**_fields(f), "providers": None}))
            arms = [page_of([*rest, usage.c.provider == p]) for p in self._providers_of(f.providers)]
            if not arms:
                return total, []
            if len(arms) == 1:
                query = arms[0].order_by(usage.c.at.desc(), usage.c.id.desc())
            else:
                merged = union_all(*arms)
                query = merged.order_by(merged.selected_columns.at.desc(), merged.selected_columns.id.desc())
        with self.engine.connect() as conn:
            page = [dict(row._mapping) for row in conn.execute(query.limit(limit).offset(offset))]
        return total, page

    def _providers_of(self, providers: tuple[str, ...]) -> list[str]:
        """A group's provider ids: its exact ids, and for a prefix (``custom-*``) every provider
        of the ledger that has it (from the daily sums, which hold every row once refreshed)."""
        exact = [p for p in providers if not p.endswith("*")]
        prefixes = [p[:-1] for p in providers if p.endswith("*")]
        if not prefixes:
            return exact
        self.refresh()
        d = usage_daily_route.c
        with self.engine.connect() as conn:
            found = [str(p) for (p,) in conn.execute(
                select(d.provider).where(or_(*(d.provider.startswith(p) for p in prefixes))).distinct())]
        return sorted({*exact, *found})

    def iter_rows(self, f: UsageFilter, *, chunk: int = 2000) -> Iterator[dict[str, Any]]:
        """The matching rows, oldest first, fetched ``chunk`` at a time over one connection: the
        CSV export of a million rows holds one chunk in memory, never the result."""
        query = (select(*_row_columns())
                 .select_from(usage.join(agents, agents.c.id == usage.c.agent_id)).where(*usage_where(f))
                 .order_by(usage.c.at, usage.c.id))
        with self.engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=chunk).execute(query)
            for row in result:
                yield dict(row._mapping)

    # --- fallback routes ---------------------------------------------------------------------

    def fallback_answers(self, f: UsageFilter) -> list[tuple[str | None, str, str, int]]:
        """Turns a fallback route answered, per (route meant for, provider, model that answered):
        the successful requests with ``attempt > 0``, over the filter's time, session and agent
        (a provider filter is the caller's: a turn belongs to the provider it was meant for as
        much as to the one that answered it).

        Read through ``ix_usage_fallback_at``, which holds fallback rows only: a period of a
        million requests with a few hundred fallbacks reads those few hundred. Only the time is
        compared as a bare column; the outcome, session and agent go through ``|| ''`` / ``+ 0``,
        which no index matches, or SQLite would walk ``ix_usage_outcome_at`` over every
        successful request of the period instead."""
        where = [_FALLBACK_ROW, usage.c.outcome.concat("") == "ok"]
        where += usage_where(UsageFilter(start=f.start, end=f.end))
        if f.session is not None:
            where.append(usage.c.session.concat("") == f.session)
        if f.agent is not None:
            where.append((usage.c.agent_id + 0).in_(select(agents.c.id).where(agents.c.name == f.agent)))
        query = (select(usage.c.fallback_from, usage.c.provider, usage.c.model, func.count()).where(*where)
                 .group_by(usage.c.fallback_from, usage.c.provider, usage.c.model))
        with self.engine.connect() as conn:
            return [(None if a is None else str(a), str(p), str(m), int(n)) for a, p, m, n in conn.execute(query)]

    def fallback_requests(self, turns: set[int]) -> dict[int, list[dict[str, Any]]]:
        """The requests to fallback routes of ``turns`` (ledger ``turn`` ids), per turn in route
        order: what came after a page's failed requests. Through ``ix_usage_fallback_turn``
        (fallback rows only): a page's 50 turns cost 50 index probes, whatever the ledger's size."""
        out: dict[int, list[dict[str, Any]]] = {}
        if not turns:
            return out
        query = (select(usage.c.turn, usage.c.attempt, usage.c.provider, usage.c.model, usage.c.outcome)
                 .where(_FALLBACK_ROW, usage.c.turn.in_(sorted(turns)))
                 .order_by(usage.c.turn, usage.c.attempt))
        with self.engine.connect() as conn:
            for turn, attempt, provider, model, outcome in conn.execute(query):
                out.setdefault(int(turn), []).append({"attempt": int(attempt), "provider": str(provider),
                                                      "model": str(model), "outcome": str(outcome)})
        return out

    # --- health transitions ----------------------------------------------------------------------

    def add_transition(self, at: float, provider: str, state_from: str | None, state_to: str,
                       detail: str | None) -> None:
        with self.engine.begin() as conn:
            conn.execute(health_transitions.insert().values(
                at=at, provider=provider, state_from=state_from, state_to=state_to, detail=detail))

    def transitions(self, f: UsageFilter) -> list[dict[str, Any]]:
        """Health changes in the filter's time range and providers (agents and outcomes do not apply), oldest first."""
        t = health_transitions
        where: list[ColumnElement[bool]] = []
        if f.start is not None:
            where.append(t.c.at >= f.start)
        if f.end is not None:
            where.append(t.c.at < f.end)
        if f.provider is not None:
            where.append(t.c.provider == f.provider)
        if f.providers is not None:
            where.append(_provider_in(t.c.provider, f.providers))
        query = select(t.c.at, t.c.provider, t.c.state_from, t.c.state_to, t.c.detail).where(*where) \
            .order_by(t.c.at, t.c.id)
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]


def _ceil_rank(q: float, n: Any) -> ColumnElement[Any]:
    """``nearest_rank`` in SQL: max(1, ceil(q*n)) with the same floating-point product."""
    product = q * cast(n, Float)
    floor = cast(product, Integer)
    return func.max(1, floor + case((product > floor, 1), else_=0))


def nearest_rank(q: float, n: int) -> int:
    """The 1-based rank of quantile ``q`` among ``n`` sorted values (nearest-rank method)."""
    import math

    return max(1, math.ceil(q * n))


def _fields(f: UsageFilter) -> dict[str, Any]:
    return {name: getattr(f, name) for name in UsageFilter.__dataclass_fields__}


def _row_columns() -> list[Any]:
    """A raw row: the agent's name, then the ledger's own columns (not its ids)."""
    return [agents.c.name.label("agent"), *(c for c in usage.c if c.name not in ("id", "agent_id"))]


def _raw_key(key: Key, width: float | None, postgres: bool = False) -> Any:
    """A group key over rows, as an expression (``|| ''``, ``+ 0``): grouping by a bare column
    lets SQLite walk that column's index for its order and visit every row of the ledger instead
    of the period's few."""
    if key == "bucket":
        assert width is not None
        if postgres:  # ``at`` is a timestamptz there, and an integer cast rounds
            return cast(func.floor(cast(func.extract("epoch", usage.c.at), Float) / width) * width, Float
                        ).label("bucket")
        return (cast(usage.c.at / width, Integer) * width).label("bucket")
    if key == "agent_id":
        return (usage.c.agent_id + 0).label(key)
    return usage.c[key].concat("").label(key)


def _daily_key(key: Key, width: float | None, postgres: bool = False, table: Table = usage_daily_detail) -> Any:
    d = table.c
    if key == "bucket":
        assert width is not None
        start = _start_of(table)
        if width == (HOUR if start.name == "hour" else DAY):  # the bare column: grouping in key order, no sort
            return start.label("bucket")
        if postgres:
            return (cast(func.floor(start / width), Integer) * width).label("bucket")
        return (cast(start / width, Integer) * width).label("bucket")
    return d[key].label(key)


def _start_of(table: Table) -> Any:
    """The time column of a sums table: its day's or its hour's start (Unix time)."""
    return table.c.hour if "hour" in table.c else table.c.day


def _floor_at(width: float, postgres: bool) -> ColumnElement[Any]:
    """The start of the ``width``-second slot of a ledger row (a day, an hour), in the engine's own SQL."""
    if postgres:
        return cast(func.floor(cast(func.extract("epoch", usage.c.at), Float) / width) * width, Float)
    return cast(cast(usage.c.at / width, Integer) * width, Float)  # times are positive: truncation is floor


def _daily_table(f: UsageFilter, keys: tuple[Key, ...]) -> Table:
    """The smallest daily sums that hold the filter's and the keys' columns: without the agent
    (a few hundred rows a day) when neither names one; per agent and provider (one row per agent
    and day) when no model or outcome is asked for; else the full detail."""
    if f.agent is None and "agent_id" not in keys:
        return usage_daily_route
    if f.outcome is None and set(keys) <= {"agent_id", "provider", "bucket"}:
        return usage_daily_agent
    return usage_daily_detail


def _hourly_table(f: UsageFilter, keys: tuple[Key, ...]) -> Table | None:
    """The hourly sums that hold the filter's and the keys' columns, or None (read the rows):
    they know agents and providers, not models or outcomes."""
    if f.outcome is not None or not set(keys) <= {"agent_id", "provider", "bucket"}:
        return None
    return usage_hourly_route if f.agent is None and "agent_id" not in keys else usage_hourly_agent


def _as_time(seconds: ColumnElement[Any], postgres: bool) -> ColumnElement[Any]:
    """A Unix time from SQL as a value of ``usage.at``: itself on SQLite, a timestamptz on PostgreSQL."""
    return func.to_timestamp(seconds) if postgres else seconds


def _daily_where(f: UsageFilter, days: tuple[float, float],
                 table: Table = usage_daily_detail) -> list[ColumnElement[bool]]:
    """The daily rows of ``f`` over ``days`` in ``table`` (``usage_daily_route`` has no agent:
    only for a filter without one)."""
    d, start = table.c, _start_of(table)
    where: list[ColumnElement[bool]] = []
    if days[0] != -math.inf:
        where.append(start >= days[0])
    if days[1] != math.inf:
        where.append(start < days[1])
    if f.agent is not None:
        where.append(d.agent_id.in_(select(agents.c.id).where(agents.c.name == f.agent)))
    if f.provider is not None:
        where.append(d.provider == f.provider)
    if f.providers is not None:
        where.append(_provider_in(d.provider, f.providers))
    if f.outcome is not None:
        where.append(_outcome_is(d.outcome, f.outcome))
    return where
