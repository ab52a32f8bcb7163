"""The daily rollups give exactly the sums the raw ledger gives, on both engines: whole days from
the rollup, partial days at a window's edges and the days not rolled up yet from the ledger, and
rows imported into days already rolled up are counted after all."""

from __future__ import annotations

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
            "cost_usd": round(sum(r["cost_usd"] for r in members), 9),
            "api_cost_usd": round(sum(r["api_cost_usd"] or 0.0 for r in members), 9),
            "avg_latency_s": round(sum(r["latency_s"] for r in ok) / len(ok), 9) if ok else None,
            "agents": len({r["agent"] for r in members}),
            "first_at": round(min(r["at"] for r in members), 3),
        }
    return out


def _store_totals(store: Store, f: UsageFilter, by: str | None) -> dict[Any, dict[str, Any]]:
    out = {}
    for row in store.usage_totals(f, by):
        key = row.pop("key", None)
        for name in ("cost_usd", "api_cost_usd", "avg_latency_s"):
            if row[name] is not None:
                row[name] = round(row[name], 9)
        row["first_at"] = None if row["first_at"] is None else round(row["first_at"], 3)
        if row["turns"] or row["errors"]:
            out[key] = row
    return out


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
             "streamed": rng.random() < 0.5} for _ in range(n)]


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
                assert _store_totals(store, f, by) == _python_totals(rows, by), (attempt, f, by)
    with store.engine.connect() as conn:
        assert rollups.watermark(conn) == rollups.floor_day(now - rollups.GRACE)

    # an imported ledger reaching back into rolled-up days is counted after all
    store.insert_usage(_ledger(50, now - 5 * DAY, rng))
    for f in windows[:4]:
        rows = store.usage_rows(f)
        assert _store_totals(store, f, "agent") == _python_totals(rows, "agent"), f
