"""The Analytics panel's ledger on PostgreSQL: the daily sums, the latency buckets and the time
series run there too (``at`` is a timestamptz, the upsert PostgreSQL's), and give the values of
a hand-made ledger, the same ones the raw rows give."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ironspire.store import engines
from ironspire.store.ledger import UsageFilter
from ironspire.store.store import Store

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC).timestamp()
H, D = 3600.0, 86400.0


def test_time_series_daily_sums_and_percentiles_on_postgresql(pg_url: str) -> None:
    engines.upgrade_url(pg_url)
    store = Store.open(pg_url)
    try:
        # three days back: (age, cost, outcome, latency); day -2 and day -1 are whole days
        rows = [(0.5 * H, 0.5, "ok", 0.25), (1.5 * H, None, "ok", 0.75), (2.5 * H, 0.0, "RateLimitError", 9.0),
                (1 * D, 1.0, "ok", 2.0), (1 * D + 1 * H, 2.0, "ok", 4.0), (2 * D + 5 * H, 4.0, "ok", 1.0)]
        store.insert_usage([{
            "agent": "ada" if i % 2 else "bob", "at": NOW - age, "session": "s", "provider": "openai", "model": "m",
            "input_tokens": 10 * (i + 1), "output_tokens": 1, "cache_read_tokens": 0, "cache_write_tokens": 0,
            "reasoning_tokens": 0, "cost_usd": cost, "api_cost_usd": None, "latency_s": latency,
            "outcome": outcome, "streamed": False, "usage_state": "reported",
        } for i, (age, cost, outcome, latency) in enumerate(rows)])
        assert store.ledger.refresh() == 6
        assert store.ledger.refresh() == 0  # nothing new: nothing summed twice
        f = UsageFilter(start=NOW - 3 * D, end=NOW)
        # by the hour: each row in the bucket of the hour it falls in (NOW is on the hour)
        hourly = {r["bucket"]: r for r in store.ledger.series(f, H)}
        assert sorted(hourly) == sorted((NOW - age) // H * H for age, *_ in rows)
        assert hourly[NOW - H]["cost_usd"] == pytest.approx(0.5) and hourly[NOW - H]["input_tokens"] == 10
        assert hourly[NOW - 2 * H]["cost_unknown"] == 1 and hourly[NOW - 3 * H]["turns"] == 0
        # by the day: the whole days come from the daily sums, the edges from the rows
        day = NOW - NOW % D
        daily = {r["bucket"]: r for r in store.ledger.series(f, D, by="agent") if r["key"] == "ada"}
        assert {b: r["input_tokens"] for b, r in daily.items()} == {day: 20, day - D: 40, day - 2 * D: 60}
        (got,) = store.ledger_totals(f)
        assert (got["turns"], got["errors"], got["input_tokens"]) == (5, 1, 210)
        assert got["cost_usd"] == pytest.approx(7.5) and got["cost_unknown"] == 1
        assert got["agents"] == 2
        (plain,) = store.usage_totals(f)
        assert (plain["turns"], plain["errors"], plain["input_tokens"]) == (5, 1, 210)
        # ok latencies 0.25, 0.75, 2.0, 4.0, 1.0: nearest rank 3 and 5
        assert store.ledger.latency_percentiles(f) == {"openai": {0.5: 1.0, 0.95: 4.0}}
        assert store.ledger.latency_percentiles(UsageFilter(start=NOW - 3 * D, end=NOW, agent="ada")) == \
            {"openai": {0.5: 1.0, 0.95: 2.0}}  # ada: rows 1, 3 and 5 (0.75, 2.0, 1.0)
    finally:
        store.close()


def test_a_row_committed_after_a_later_id_is_still_summed(pg_url: str) -> None:
    """PostgreSQL hands ids out before commit: a turn still in flight can hold a smaller id than a
    row already committed. The daily sums wait for it instead of moving their watermark past it."""
    import threading

    from sqlalchemy import insert, select

    from ironspire.store.schema import agents, usage

    engines.upgrade_url(pg_url)
    store = Store.open(pg_url)
    other = engines.make_engine(engines.parse(pg_url))  # a second client: the turn in flight
    try:
        def row(agent_id: int, age: float) -> dict[str, object]:
            return {"at": NOW - age, "session": "s", "agent_id": agent_id, "provider": "openai", "model": "m",
                    "input_tokens": 100, "output_tokens": 1, "cache_read_tokens": 0, "cache_write_tokens": 0,
                    "reasoning_tokens": 0, "cost_usd": 1.0, "api_cost_usd": None, "latency_s": 0.5, "outcome": "ok",
                    "streamed": False, "usage_state": "reported"}

        store.insert_usage([{**row(0, 3 * D), "agent": "ada"}])
        with other.connect() as c:
            (aid,) = c.execute(select(agents.c.id).where(agents.c.name == "ada")).one()
        store.ledger.refresh()
        slow = other.connect()
        pending = slow.begin()
        slow.execute(insert(usage).values(row(aid, 2 * D)))  # takes the smaller id, not committed yet
        store.insert_usage([{**row(0, 2 * D), "agent": "ada"}])  # a larger id, committed
        done = threading.Event()
        worker = threading.Thread(target=lambda: (store.ledger.refresh(), done.set()))
        worker.start()
        assert not done.wait(1.0)  # the sums wait for the turn in flight
        pending.commit()
        slow.close()
        worker.join(10)
        assert done.is_set()
        (got,) = store.ledger_totals(UsageFilter(start=NOW - 4 * D, end=NOW - D))  # whole days: the daily sums
        assert (got["turns"], got["input_tokens"]) == (3, 300)
    finally:
        other.dispose()
        store.close()


def test_db_upgrade_sums_the_ledger_ahead_of_the_first_read(pg_url: str) -> None:
    """``ironspire db upgrade`` (run once per release, before the workers start) sums what the
    ledger holds, so the Analytics panel's first read after an upgrade does not."""
    engines.upgrade_url(pg_url)
    store = Store.open(pg_url)
    try:
        store.insert_usage([{
            "agent": "ada", "at": NOW - i * H, "session": "s", "provider": "openai", "model": "m",
            "input_tokens": 10, "output_tokens": 1, "cache_read_tokens": 0, "cache_write_tokens": 0,
            "reasoning_tokens": 0, "cost_usd": 1.0, "api_cost_usd": None, "latency_s": 0.5,
            "outcome": "ok", "streamed": False, "usage_state": "reported",
        } for i in range(30)])
        engines.upgrade_url(pg_url)  # the next release's upgrade
        assert store.ledger.refresh() == 0  # every row was summed by the upgrade
        (got,) = store.ledger_totals(UsageFilter(start=NOW - 2 * D, end=NOW + 1))
        assert (got["turns"], got["input_tokens"]) == (30, 300)
    finally:
        store.close()
