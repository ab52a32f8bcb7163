"""The Analytics panel's queries over a large ledger on PostgreSQL (monthly partitions).

    python -m bench.ledger                      # 10,000,000 rows over 12 months, 50 agents
    python -m bench.ledger --rows 1000000

Starts a private PostgreSQL under a temp dir (``tests/support/postgres.py``) or uses
``--database URL``; fills the ledger server-side (``generate_series``: a synthetic mix of agents,
providers, models, outcomes and sessions, times spread evenly over the months), runs ANALYZE, then
times every query the panel makes, through the store exactly as the product runs them
(``Store.usage_totals`` / ``usage_rows`` / ``latest_session``): each the median of 5 runs after one
warm-up. The figures go to docs/benchmarks.md by hand, with the machine they ran on.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from bench.pg import database

PROVIDERS = ("openai", "anthropic", "google", "groq", "ollama")
DAY = 86400.0


def fill(url: str, rows: int, months: int, agents: int) -> float:
    """Creates the agents and ``rows`` ledger rows ending now; returns the seconds it took."""
    import psycopg
    from sqlalchemy.engine import make_url

    from ironspire.store import engines, postgres
    from ironspire.store.store import Store

    engines.upgrade_url(url)
    store = Store.open(url)
    try:
        for i in range(agents):
            store.create_agent(f"agent-{i:02d}", None, None, None)
        end = time.time()
        start = end - months * 30 * DAY
        postgres.ensure_partitions(store.engine, start, end)
    finally:
        store.close()
    u = make_url(url)
    began = time.perf_counter()
    with psycopg.connect(host=u.host, port=u.port, user=u.username, dbname=u.database, autocommit=True) as pg:
        ids = [r[0] for r in pg.execute("SELECT id FROM agents ORDER BY id")]
        providers = "ARRAY[" + ",".join(f"'{p}'" for p in PROVIDERS) + "]"
        batch = 1_000_000
        for first in range(0, rows, batch):
            last = min(rows, first + batch)
            pg.execute(f"""
                INSERT INTO usage (at, session, agent_id, provider, model, input_tokens, output_tokens,
                    cache_read_tokens, cache_write_tokens, reasoning_tokens, cost_usd, api_cost_usd, latency_s,
                    outcome, streamed)
                SELECT to_timestamp({start} + (g::float8 / {rows}) * {end - start}),
                       'session-' || (g / 500)::text,
                       ({ids[0]} + g % {len(ids)}),
                       ({providers})[1 + (g / 7) % {len(PROVIDERS)}],
                       'model-' || ((g / 3) % 4)::text,
                       100 + g % 900, 10 + g % 90, (g % 5) * 100, g % 3, g % 17,
                       ((g % 1000) / 100000.0), ((g % 1000) / 100000.0), 0.2 + (g % 50) / 100.0,
                       CASE WHEN g % 50 = 0 THEN 'RateLimitError' ELSE 'ok' END,
                       g % 2 = 0
                FROM generate_series({first}, {last - 1}) AS g
            """)
        pg.execute("ANALYZE usage")
        pg.execute("ANALYZE agents")
    return time.perf_counter() - began


def _time(call: Any, repeat: int = 5) -> dict[str, Any]:
    call()
    times = []
    result = None
    for _ in range(repeat):
        began = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - began)
    return {"median_ms": statistics.median(times) * 1000, "max_ms": max(times) * 1000,
            "groups": len(result) if isinstance(result, list) else None}


def queries(url: str) -> dict[str, dict[str, Any]]:
    from ironspire.store import rollups
    from ironspire.store.store import Store, UsageFilter

    store = Store.open(url)
    try:
        now = time.time()
        out: dict[str, dict[str, Any]] = {}
        began = time.perf_counter()  # once after an upgrade or an import: every closed day at once
        with store.engine.begin() as conn:
            rollups.refresh(conn, now)
        out["rollup of every closed day (once)"] = {"median_ms": (time.perf_counter() - began) * 1000,
                                                    "max_ms": (time.perf_counter() - began) * 1000, "groups": None}
        for label, seconds in (("24h", DAY), ("7d", 7 * DAY), ("30d", 30 * DAY), ("90d", 90 * DAY), ("all", None)):
            window = UsageFilter(start=None if seconds is None else now - seconds)
            out[f"KPIs {label}"] = _time(lambda w=window: store.usage_totals(w))
            for by in ("agent", "provider", "model"):
                out[f"by {by} {label}"] = _time(lambda w=window, b=by: store.usage_totals(w, b))
        out["by agent 30d, one provider"] = _time(
            lambda: store.usage_totals(UsageFilter(start=now - 30 * DAY, provider="groq"), "agent"))
        out["by model 30d, one agent"] = _time(
            lambda: store.usage_totals(UsageFilter(start=now - 30 * DAY, agent="agent-07"), "model"))
        session = store.latest_session()
        out["latest session"] = _time(store.latest_session)
        out["KPIs session"] = _time(lambda: store.usage_totals(UsageFilter(session=session)))
        out["raw turns 1h (CSV)"] = _time(lambda: store.usage_rows(UsageFilter(start=now - 3600)))
        return out
    finally:
        store.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=10_000_000)
    p.add_argument("--months", type=int, default=12)
    p.add_argument("--agents", type=int, default=50)
    p.add_argument("--database", help="PostgreSQL URL (default: a private server under a temp dir)")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    with database(args.database) as url:
        fill_s = fill(url, args.rows, args.months, args.agents)
        print(f"filled {args.rows:,} rows in {fill_s:.0f} s", flush=True)
        result = {"rows": args.rows, "months": args.months, "agents": args.agents, "fill_s": fill_s,
                  "queries": queries(url)}
    for name, r in result["queries"].items():
        print(f"{name:<32} {r['median_ms']:>9.1f} ms  (max {r['max_ms']:.1f})")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
