"""The Analytics panel on a big ledger: ``python bench/analytics.py [--rows N] [--keep PATH]``.

Generates a ledger of ``--rows`` requests (default 1,000,000) spread over 90 days and 200 agents
(13 built-in providers and two custom endpoints; each agent on its own route, 1% of its
requests elsewhere; ~3% failures of every class; 1% of turns without usage), then times every
tab's queries for every period the filter bar offers, all agents, one agent and one provider
group, and streams the raw-turns CSV of everything, measuring its memory. Server time is
the time of the analytics call that a page or its JSON twin makes (the query and the shaping of
its result), median of ``--repeat`` runs after one warm-up. Prints a Markdown table;
``--doc`` replaces the "Analytics panel" section of docs/benchmarks.md with it.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

if not __package__:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from ironspire.analytics import EXPORT_FIELDS, Analytics
from ironspire.store import sql
from ironspire.store.store import Store, default_url

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
DAY = 86400.0
PROVIDERS = {  # provider -> (models, billed)
    "claude-api": (("claude-sonnet-5-5", "claude-haiku-5"), True), "claude-sdk": (("claude-sonnet-5-5",), False),
    "openai": (("gpt-4.1", "gpt-6-luna"), True), "azure-openai": (("gpt-4.1",), True),
    "google": (("gemini-3-pro",), True),
    "bedrock": (("anthropic.claude-sonnet",), True), "mistral": (("mistral-large",), True),
    "deepseek": (("deepseek-chat",), True), "xai": (("grok-4",), True), "groq": (("llama-4",), True),
    "together": (("qwen-3",), True), "fireworks": (("kimi-k2",), True), "ollama": (("llama3",), False),
    "custom-box": (("local-model",), True), "custom-gateway": (("gateway-model",), True),
}
OUTCOMES = (("ok", 0.97), ("RateLimitError", 0.012), ("AuthenticationError", 0.004),
            ("ProviderUnavailable", 0.01), ("BadRequest", 0.002), ("cancelled", 0.002))
#: the failures a fallback route may answer in the generated ledger (fallback_on's defaults)
FALLS_BACK = ("RateLimitError", "ProviderUnavailable")
PERIODS = ("session", "1h", "6h", "24h", "7d", "30d", "90d", "custom")


def generate(store: Store, rows: int, agents: int, now: float, seed: int = 13) -> dict[str, Any]:
    rng = random.Random(seed)
    ids = [store.create_agent(f"agent-{i:03d}", None, None, None)[0] for i in range(agents)]
    routes = [(p, m, billed) for p, (models, billed) in PROVIDERS.items() for m in models]
    agent_route = {a: routes[i % len(routes)] for i, a in enumerate(ids)}
    outcomes, weights = zip(*OUTCOMES, strict=True)
    con = sqlite3.connect(store.path)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=OFF")
    start = now - 90 * DAY
    batch: list[tuple[Any, ...]] = []
    began = time.perf_counter()
    written = fallbacks = 0
    for n in range(rows):
        if written >= rows:
            break
        at = start + (n + rng.random()) * (90 * DAY / rows)  # time order, as a real ledger is written
        agent = rng.choice(ids)
        # an agent keeps its route; 1% of its requests go elsewhere (a switch)
        provider, model, billed = agent_route[agent] if rng.random() < 0.99 else rng.choice(routes)
        outcome = rng.choices(outcomes, weights)[0]
        session = "bench-live" if at > now - 2 * 3600 else f"s{int(at // (6 * 3600))}"
        batch.append(_request(rng, at, session, agent, provider, model, billed, outcome, n, 0, None))
        written += 1
        if outcome in FALLS_BACK and rng.random() < 0.5 and written < rows:
            # half of the rate-limited and unavailable requests belong to agents with a fallback
            # route, which answers the same turn half a second later (attempt 1)
            other, other_model, other_billed = rng.choice([r for r in routes if r[0] != provider])
            batch.append(_request(rng, at + 0.5, session, agent, other, other_model, other_billed, "ok", n, 1,
                                  f"{provider}/{model}"))
            written += 1
            fallbacks += 1
        if len(batch) >= 20000:
            con.executemany(sql.INSERT_TURN_USAGE, batch)
            con.commit()
            batch.clear()
    if batch:
        con.executemany(sql.INSERT_TURN_USAGE, batch)
        con.commit()
    con.execute("ANALYZE")
    con.commit()
    con.close()
    return {"seconds": time.perf_counter() - began, "bytes": store.path.stat().st_size, "fallbacks": fallbacks}


def _request(rng: random.Random, at: float, session: str, agent: int, provider: str, model: str, billed: bool,
             outcome: str, turn: int, attempt: int, fallback_from: str | None) -> tuple[Any, ...]:
    """One ledger row in ``sql.INSERT_TURN_USAGE``'s order: what a request of that outcome
    records (a failure or 1% of successes: unknown usage and cost)."""
    if outcome != "ok" or rng.random() < 0.01:
        i = o = cr = cw = rs = 0
        state, cost, api, price = "unknown", None, None, None
    else:
        i, o = rng.randint(200, 20000), rng.randint(20, 2000)
        cr, cw, rs = rng.choice((0, 0, rng.randint(0, 50000))), rng.choice((0, 0, 0, 1024)), o // 4
        state = "reported"
        api = (i * 3 + o * 15 + cr * 0.3 + cw * 3.75) / 1e6 if not provider.startswith("custom-") else None
        cost = api if billed else 0.0
        price = None if api is None else '{"input":3.0,"output":15.0,"cache_read":0.3,"cache_write":3.75,' \
                                         '"source":"catalog"}'
    latency = rng.lognormvariate(0.3, 0.6)
    return (at, session, agent, provider, model, i, o, cr, cw, rs, cost, api, latency, outcome,
            int(rng.random() < 0.8), state, price, attempt, fallback_from, turn)


def tabs(a: Analytics) -> dict[str, Callable[..., Any]]:
    """Each tab's server work, as the page and its JSON twin do it."""
    return {
        "Overview": lambda **f: (a.kpis(**f), a.series(**f)),
        "Fleet": lambda **f: a.fleet(**f),
        "Models & providers": lambda **f: (a.breakdown("model", **f), a.breakdown("provider", **f)),
        "Turns": lambda **f: a.turns_page(**f),
        "Turns (errors)": lambda **f: a.turns_page(outcome="error", **f),
        "Turns (fallback)": lambda **f: a.turns_page(outcome="fallback", **f),
        "Reliability": lambda **f: a.reliability(**f),
    }


def timed(fn: Callable[[], Any], repeat: int) -> float:
    fn()
    runs = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - began)
    return statistics.median(runs) * 1000


def csv_memory(a: Analytics, limit_period: str, now: float) -> dict[str, float]:
    """Streams the raw-turns CSV of a period into a sink; tracemalloc's peak while it runs."""
    class Sink:
        bytes = 0

        def write(self, text: str) -> None:
            self.bytes += len(text)

    gc.collect()
    tracemalloc.start()
    began = time.perf_counter()
    sink = Sink()
    lines = sum(1 for chunk in a.iter_turns_csv(limit_period, fields=EXPORT_FIELDS, now=now) if sink.write(chunk)
                is None)
    seconds = time.perf_counter() - began
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"rows": lines - 1, "seconds": seconds, "peak_mb": peak / 2**20, "mb": sink.bytes / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="a directory for the generated database (reused if present)")
    parser.add_argument("--doc", action="store_true", help="write the section into docs/benchmarks.md")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--no-csv", action="store_true", help="skip the CSV export (minutes on 1M rows)")
    args = parser.parse_args()
    home = args.keep or Path(tempfile.mkdtemp(prefix="ironspire-bench-analytics-"))
    home.mkdir(parents=True, exist_ok=True)
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC).timestamp()
    fresh = not (home / "ironspire.db").exists()
    store = Store.open(default_url(home))
    made = generate(store, args.rows, args.agents, now) if fresh else {"seconds": 0.0,
                                                                       "bytes": store.path.stat().st_size}
    began = time.perf_counter()
    summed = store.ledger.refresh()  # the daily sums, made on the first read of a ledger this size
    made["refresh_s"], made["refresh_rows"] = time.perf_counter() - began, summed
    analytics = Analytics(store, session_id="bench-live", session_started=now - 2 * 3600)
    custom = (datetime.fromtimestamp(now, UTC) - timedelta(days=45)).date().isoformat() + ".." + \
        (datetime.fromtimestamp(now, UTC) - timedelta(days=15)).date().isoformat()
    results: dict[str, dict[str, dict[str, float]]] = {}
    scopes: tuple[tuple[str, dict[str, str]], ...] = (
        ("all agents", {}), ("one agent", {"agent": "agent-007"}), ("Claude group", {"group": "claude"}))
    for scope, extra in scopes:
        for tab, fn in tabs(analytics).items():
            row = results.setdefault(f"{tab} — {scope}", {})
            for period in PERIODS:
                name = custom if period == "custom" else period
                row[period] = {"ms": timed(lambda fn=fn, name=name, extra=extra: fn(period=name, now=now, **extra),
                                           args.repeat)}
    memory = {} if args.no_csv else {p: csv_memory(analytics, p, now) for p in ("7d", "90d")}
    store.close()
    worst = max(v["ms"] for row in results.values() for v in row.values())
    lines = [
        f"Ledger: {args.rows:,} requests over 90 days, {args.agents} agents, 15 providers, "
        f"{made['bytes'] / 2**20:.0f} MB of SQLite"
        + (f" (generated in {made['seconds']:.0f} s)" if made["seconds"] else "")
        + (f", {made['fallbacks']:,} of its turns answered by a fallback route after a rate limit or an outage"
           if made.get("fallbacks") else "") + ". "
        "The derived sums (per day ``usage_daily_detail``, ``usage_daily_route``, ``usage_daily_agent``, per hour "
        "``usage_hourly_agent``, ``usage_hourly_route``, latency buckets ``usage_daily_latency``) of rows never "
        f"summed: {made['refresh_rows']:,} rows in {made['refresh_s']:.1f} s, once, on the first read. "
        f"Server time per tab (median of {args.repeat} after a warm-up, ms), the analytics calls a page and its JSON "
        f"twin make; custom = {custom}. Slowest cell: {worst:.0f} ms.",
        "",
        "| tab — scope | " + " | ".join(PERIODS) + " |",
        "|---|" + "---:|" * len(PERIODS),
    ]
    for key, row in results.items():
        lines.append(f"| {key} | " + " | ".join(f"{row[p]['ms']:.1f}" for p in PERIODS) + " |")
    lines += ["", "Raw-turns CSV export streamed (rows read from the database 2,000 at a time):", "",
              "| period | rows | CSV MB | seconds | peak Python memory (tracemalloc) |", "|---|---:|---:|---:|---:|"]
    for period, m in memory.items():
        lines.append(f"| {period} | {m['rows']:,} | {m['mb']:.0f} | {m['seconds']:.1f} | {m['peak_mb']:.2f} MB |")
    table = "\n".join(lines)
    print(table)
    if args.json:
        args.json.write_text(json.dumps({"results": results, "csv": memory, "ledger": made}, indent=1))
    if args.doc:
        write_doc(table)


#: where the section's hand-written explanation starts: kept when the figures are rewritten
HAND_WRITTEN = "\nHow the panel stays fast"


def write_doc(table: str) -> None:
    head = "## Analytics panel: every tab, every period, 1M-request ledger (`python bench/analytics.py`)"
    text = DOC.read_text()
    if head in text:
        before, _, rest = text.partition(head)
        nxt = rest.find("\n## ")
        section, after = (rest[:nxt], rest[nxt:]) if nxt >= 0 else (rest, "")
        kept = section[section.find(HAND_WRITTEN):] if HAND_WRITTEN in section else ""
        text = before + head + "\n\n" + table + "\n" + kept + after
    else:
        marker = "\n## Analysis (hand-written"
        before, _, rest = text.partition(marker)
        text = before + "\n" + head + "\n\n" + table + "\n" + marker + rest
    DOC.write_text(text)


if __name__ == "__main__":
    main()
