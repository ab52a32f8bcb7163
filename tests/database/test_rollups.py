"""The daily rollups give exactly the sums the raw ledger gives, on both engines: whole days from
the rollup, partial days at a window's edges and the days not rolled up yet from the ledger, and
rows imported into days already rolled up are counted after all."""

from __future__ import annotations

import math
import random
import time
from pathlib import Path
from typing import Any

import pytest

from ironspire.store import rollups
from ironspire.store.schema import TOKEN_COLUMNS
from ironspire.store.store import Store, UsageFilter

DAY = 86400.0


def _python_totals(rows: list[dict[str, Any]], by: str | None) -> dict[Any, dict[str, Any]]:
    groups: dict[Any, list[dict[str, Any]]] = {}
    for r in rows:
        key = None if by is None else (f"{r['provider']}/{r['model']}" if by == "model" else r[by])
        groups.setdefault(key, []).append(r)
    out = {}
    for key, members in groups.items():
        ok = [r for r in members if r["outcome"] == "ok"]
        out[key] = {
            "turns": len(ok), "errors": len(members) - len(ok),
            **{c: sum(r[c] for r in members) for c in TOKEN_COLUMNS},
            "cost_usd": sum(r["cost_usd"] for r in members),
            "api_cost_usd": sum(r["api_cost_usd"] or 0.0 for r in members),
            "avg_latency_s": sum(r["latency_s"] for r in ok) / len(ok) if ok else None,
            "agents": len({r["agent"] for r in members}),
            "first_at": round(min(r["at"] for r in members), 3),
            "unknown_usage": sum(1 for r in ok if r["usage_state"] == "unknown"),
        }
    return out


def _store_totals(store: Store, f: UsageFilter, by: str | None) -> dict[Any, dict[str, Any]]:
    out = {}
    for row in store.usage_totals(f, by):
        key = row.pop("key", None)
        row["first_at"] = None if row["first_at"] is None else round(row["first_at"], 3)
        if row["turns"] or row["errors"]:
            out[key] = row
    return out


def _same(got: dict[Any, dict[str, Any]], want: dict[Any, dict[str, Any]], where: Any) -> None:
    """Equal groups and counts; sums of floats equal up to the last bits (the rollup adds them in
    another order than the raw rows)."""
    assert got.keys() == want.keys(), where
    for key, expected in want.items():
        assert got[key].keys() == expected.keys(), (where, key)
        for name, value in expected.items():
            if isinstance(value, float):
                assert math.isclose(got[key][name], value, rel_tol=1e-9, abs_tol=1e-12), (where, key, name)
            else:
                assert got[key][name] == value, (where, key, name, got[key][name], value)


@pytest.fixture
def store(database_url: str | None, isolated_env: Path) -> Any:
    opened = Store.open(database_url or f"sqlite:///{isolated_env / 'ironspire.db'}")
    yield opened
    opened.close()


def _ledger(n: int, now: float, rng: random.Random) -> list[dict[str, Any]]:
    return [{"agent": rng.choice(["ada", "bob", "cy"]), "at": now - rng.uniform(0, 20 * DAY),
             "session": rng.choice(["s1", "s2"]), "provider": rng.choice(["openai", "groq"]),
             "model": rng.choice(["m1", "m2"]), "input_tokens": rng.randint(0, 900),
             "output_tokens": rng.randint(0, 90), "cache_read_tokens": rng.randint(0, 50),
             "cache_write_tokens": rng.randint(0, 5), "reasoning_tokens": rng.randint(0, 9),
             "cost_usd": rng.randint(0, 1000) / 1e5, "api_cost_usd": rng.choice([None, 0.001, 0.0025]),
             "latency_s": rng.randint(1, 900) / 1000, "outcome": rng.choice(["ok", "ok", "ok", "RateLimitError"]),
             "streamed": rng.random() < 0.5,
             "usage_state": rng.choice([None, "reported", "estimated", "unknown"])} for _ in range(n)]


def test_rolled_up_sums_equal_the_raw_ledgers(store: Store) -> None:
    rng = random.Random(11)
    now = time.time()
    store.insert_usage(_ledger(600, now, rng))
    windows = [UsageFilter(), UsageFilter(start=now - 7 * DAY), UsageFilter(start=now - 30 * DAY),
               UsageFilter(start=now - 9.5 * DAY, end=now - 2.25 * DAY), UsageFilter(start=now - 3600),
               UsageFilter(start=now - 15 * DAY, provider="groq"), UsageFilter(agent="bob", end=now - 4 * DAY),
               UsageFilter(session="s1", start=now - 10 * DAY)]
    for attempt in range(2):  # before the rollup exists (the first query makes it) and after
        for f in windows:
            rows = store.usage_rows(f)
            for by in (None, "agent", "provider", "model"):
                _same(_store_totals(store, f, by), _python_totals(rows, by), (attempt, f, by))
    with store.engine.connect() as conn:
        assert rollups.watermark(conn) == rollups.floor_day(now - rollups.GRACE)

    # an imported ledger reaching back into rolled-up days is counted after all
    store.insert_usage(_ledger(50, now - 5 * DAY, rng))
    for f in windows[:4]:
        rows = store.usage_rows(f)
        _same(_store_totals(store, f, "agent"), _python_totals(rows, "agent"), f)
