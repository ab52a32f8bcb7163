"""The Analytics panel's ledger on PostgreSQL: aggregates without time buckets read the raw rows
and agree with the store's totals; the time series (SQLite's float arithmetic on ``at`` and its
daily detail upsert) refuse with a clear ConfigurationError rather than a raw SQL error."""

from __future__ import annotations

import time

import pytest

from ironspire.errors import ConfigurationError
from ironspire.store import engines
from ironspire.store.ledger import UsageFilter
from ironspire.store.store import Store


def test_time_series_refuse_clearly_and_sums_read_the_raw_rows(pg_url: str) -> None:
    engines.upgrade_url(pg_url)
    store = Store.open(pg_url)
    try:
        now = time.time()
        store.insert_usage([{
            "agent": "ada", "at": now - 60 * i, "session": "s", "provider": "openai", "model": "m",
            "input_tokens": 10, "output_tokens": 1, "cache_read_tokens": 0, "cache_write_tokens": 0,
            "reasoning_tokens": 0, "cost_usd": None if i == 0 else 0.5, "api_cost_usd": None, "latency_s": 0.25,
            "outcome": "ok" if i < 2 else "RateLimitError", "streamed": False, "usage_state": "reported",
        } for i in range(3)])
        f = UsageFilter(start=now - 3 * 86400)
        with pytest.raises(ConfigurationError, match="time series is not available on PostgreSQL"):
            store.ledger.series(f, 3600.0)
        with pytest.raises(ConfigurationError, match="daily sums is not available on PostgreSQL"):
            store.ledger.refresh()
        (got,) = store.ledger_totals(f)
        assert (got["turns"], got["errors"], got["input_tokens"]) == (2, 1, 30)
        assert got["cost_usd"] == pytest.approx(1.0)
        assert got["cost_unknown"] == 1
        (plain,) = store.usage_totals(f)
        assert (plain["turns"], plain["errors"], plain["input_tokens"]) == (2, 1, 30)
    finally:
        store.close()
