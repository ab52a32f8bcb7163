"""The Analytics KPIs, periods and CSV exports over a ledger whose every row is known, against
values computed by hand from the definitions in ``ironspire.analytics`` (which follow the
Analytics panel: Total Spend, Active Agents, Total Tokens, Cache Hit Rate, Burn Rate, Turns).

The ledger, at a fixed ``NOW`` (2026-06-15 12:00 UTC); tokens are in/out/cache read/cache write:

    row  age    session agent   provider    in     out   cr    cw    cost  api    outcome
    r1   15min  this    coder   claude-api  1000   200   3000  500   0.10  0.10   ok
    r2   30min  this    writer  openai      2000   100   1000  0     0.05  0.05   ok
    r3   45min  this    writer  openai      0      0     0     0     0     -      RateLimitError
    r4   3h     old1    local   ollama      400    80    0     0     0     -      ok
    r5   12h    old1    coder   claude-api  100    50    900   0     0.02  0.02   ok
    r6   3d     old2    sub     claude-sdk  10     300   5000  1000  0     0.25   ok
    r7   20d    old3    coder   openai      10000  1000  0     0     1.00  1.00   ok
    r8   60d    old4    writer  claude-api  20000  2000  0     0     3.00  3.00   ok
    r9   120d   old5    writer  openai      50000  5000  0     0     10.00 10.00  ok

so each period (1h, 6h, 24h, 7d, 30d, 90d, all) takes in exactly one more row than the last.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ironspire.analytics import SUMMARY_FIELDS, TURN_FIELDS
from ironspire.errors import ConfigurationError
from ironspire.workspace import Workspace
from workspace.loopback import Server, serving

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC).timestamp()
H, D = 3600.0, 86400.0

#: (age s, session, agent, provider, model, in, out, cache read, cache write, reasoning, cost, api cost, outcome, s)
LEDGER: list[tuple[Any, ...]] = [
    (0.25 * H, "this", "coder", "claude-api", "claude-sonnet-5-5", 1000, 200, 3000, 500, 50, 0.10, 0.10, "ok", 1.0),
    (0.50 * H, "this", "writer", "openai", "gpt-4.1", 2000, 100, 1000, 0, 0, 0.05, 0.05, "ok", 2.0),
    (0.75 * H, "this", "writer", "openai", "gpt-4.1", 0, 0, 0, 0, 0, 0.0, None, "RateLimitError", 0.3),
    (3 * H, "old1", "local", "ollama", "llama3", 400, 80, 0, 0, 0, 0.0, None, "ok", 4.0),
    (12 * H, "old1", "coder", "claude-api", "claude-sonnet-5-5", 100, 50, 900, 0, 0, 0.02, 0.02, "ok", 1.0),
    (3 * D, "old2", "sub", "claude-sdk", "claude-sonnet-5-5", 10, 300, 5000, 1000, 120, 0.0, 0.25, "ok", 6.0),
    (20 * D, "old3", "coder", "openai", "gpt-4.1", 10000, 1000, 0, 0, 0, 1.00, 1.00, "ok", 3.0),
    (60 * D, "old4", "writer", "claude-api", "claude-sonnet-5-5", 20000, 2000, 0, 0, 0, 3.00, 3.00, "ok", 1.5),
    (120 * D, "old5", "writer", "openai", "gpt-4.1", 50000, 5000, 0, 0, 0, 10.00, 10.00, "ok", 2.5),
]


def _fill(ws: Workspace, now: float = NOW) -> None:
    ws.store.insert_usage(
        dict(at=now - age, session=ws.session_id if session == "this" else session, agent=agent,
             provider=pid, model=model, input_tokens=i, output_tokens=o, cache_read_tokens=cr,
             cache_write_tokens=cw, reasoning_tokens=rs, cost_usd=cost, api_cost_usd=api,
             latency_s=latency, outcome=outcome, streamed=agent == "coder")
        for age, session, agent, pid, model, i, o, cr, cw, rs, cost, api, outcome, latency in LEDGER)


@pytest.fixture
def ledger(ws: Workspace) -> Workspace:
    _fill(ws)
    ws.session_started = NOW - 1 * H  # this workspace's session began an hour before NOW
    return ws


# Hand-computed from the table: (rows, spend, api-equivalent, active agents, total tokens,
# cache read, all input, turns, errors, hours the burn rate divides by).
EXPECTED = {
    "1h": (3, 0.15, 0.15, 2, 7800, 4000, 7500, 2, 1, 1),
    "6h": (4, 0.15, 0.15, 3, 8280, 4000, 7900, 3, 1, 6),
    "24h": (5, 0.17, 0.17, 3, 9330, 4900, 8900, 4, 1, 24),
    "7d": (6, 0.17, 0.42, 4, 15640, 9900, 14910, 5, 1, 168),
    "30d": (7, 1.17, 1.42, 4, 26640, 9900, 24910, 6, 1, 720),
    "90d": (8, 4.17, 4.42, 4, 48640, 9900, 44910, 7, 1, 2160),
    "all": (9, 14.17, 14.42, 4, 103640, 9900, 94910, 8, 1, 2880),  # since the first request, 120 days ago
    "session": (3, 0.15, 0.15, 2, 7800, 4000, 7500, 2, 1, 1),  # since the session began
}


@pytest.mark.parametrize("period", list(EXPECTED))
def test_kpis_per_period_match_hand_computed_values(ledger: Workspace, period: str) -> None:
    rows, spend, api, agents, tokens, cache_read, prompt, turns, errors, hours = EXPECTED[period]
    assert len(ledger.analytics.turns(period, now=NOW)) == rows
    k = ledger.analytics.kpis(period, now=NOW)
    assert k["period"] == period
    assert k["total_spend_usd"] == pytest.approx(spend)
    assert k["api_equivalent_usd"] == pytest.approx(api)
    assert k["active_agents"] == agents
    assert k["total_tokens"] == tokens
    assert k["cache_hit_rate"] == pytest.approx(cache_read / prompt)
    assert k["burn_rate_usd_per_hour"] == pytest.approx(spend / hours)
    assert (k["turns"], k["errors"]) == (turns, errors)
    assert k["running_agents"] == 0


def test_session_of_a_fresh_process_is_the_latest_recorded_one(ledger: Workspace, open_ws: Any) -> None:
    """A CLI call opens its own session and makes no request: it reports the last session,
    whose burn rate runs from its first request (45 min before NOW) to NOW."""
    fresh: Workspace = open_ws()
    try:
        k = fresh.analytics.kpis("session", now=NOW)
        assert (k["turns"], k["errors"], k["total_spend_usd"]) == (2, 1, pytest.approx(0.15))
        assert k["burn_rate_usd_per_hour"] == pytest.approx(0.15 / 0.75)
    finally:
        fresh.close()


def test_filters_by_agent_and_provider(ledger: Workspace) -> None:
    k = ledger.analytics.kpis("30d", agent="coder", now=NOW)  # r1, r5, r7
    assert (k["total_spend_usd"], k["total_tokens"], k["turns"]) == (pytest.approx(1.12), 16750, 3)
    assert k["cache_hit_rate"] == pytest.approx(3900 / 15500)
    k = ledger.analytics.kpis("all", provider="claude-api", now=NOW)  # r1, r5, r8
    assert (k["total_spend_usd"], k["active_agents"], k["turns"]) == (pytest.approx(3.12), 2, 3)


def test_an_empty_period_has_zero_kpis(ws: Workspace) -> None:
    k = ws.analytics.kpis("1h", now=NOW)
    assert (k["total_spend_usd"], k["active_agents"], k["total_tokens"], k["cache_hit_rate"],
            k["burn_rate_usd_per_hour"], k["turns"]) == (0, 0, 0, 0.0, 0.0, 0)


def test_summary_per_agent_provider_and_model(ledger: Workspace) -> None:
    stats = ledger.analytics
    by_agent = stats.summary("agent", "30d", now=NOW)
    assert [r["agent"] for r in by_agent] == ["coder", "writer", "sub", "local"]  # by cost, then tokens
    coder, writer = by_agent[0], by_agent[1]
    assert (coder["cost_usd"], coder["turns"], coder["total_tokens"]) == (pytest.approx(1.12), 3, 16750)
    assert (writer["turns"], writer["errors"], writer["avg_latency_s"]) == (1, 1, 2.0)  # r3 not in the average
    by_provider = {r["provider"]: r for r in stats.summary("provider", "30d", now=NOW)}
    openai = by_provider["openai"]
    assert (openai["input_tokens"], openai["output_tokens"], openai["cache_read_tokens"]) == (12000, 1100, 1000)
    assert (openai["cost_usd"], openai["avg_latency_s"], openai["turns"]) == (pytest.approx(1.05), 2.5, 2)
    assert by_provider["claude-sdk"]["cost_usd"] == 0 and by_provider["claude-sdk"]["api_cost_usd"] == 0.25
    assert by_provider["claude-sdk"]["reasoning_tokens"] == 120
    models = [r["model"] for r in stats.summary("model", "all", now=NOW)]
    assert models == ["openai/gpt-4.1", "claude-api/claude-sonnet-5-5", "claude-sdk/claude-sonnet-5-5",
                      "ollama/llama3"]


@pytest.mark.parametrize(("period", "ages", "hours"), [
    # a bare date END includes that whole day: June 12 00:00 to June 16 00:00, burn counted up to NOW
    ("2026-06-12..2026-06-15", [3 * D, 12 * H, 3 * H, 0.75 * H, 0.5 * H, 0.25 * H], 84),
    # START inclusive, a date-time END exclusive: r5 sits exactly on END
    ("2026-06-12T12:00..2026-06-15T00:00", [3 * D], 60),
    ("2026-06-12T12:00:01..", [12 * H, 3 * H, 0.75 * H, 0.5 * H, 0.25 * H], None),
    ("..2026-04-16", [120 * D, 60 * D], None),
    ("2026-06-12T14:00+02:00..2026-06-12T14:00:01+02:00", [3 * D], None),  # offsets are honoured
])
def test_custom_ranges(ledger: Workspace, period: str, ages: list[float], hours: float | None) -> None:
    rows = ledger.analytics.turns(period, now=NOW)
    assert [round(NOW - r["at"]) for r in rows] == [round(a) for a in ages]
    if hours is not None:
        k = ledger.analytics.kpis(period, now=NOW)
        assert k["burn_rate_usd_per_hour"] == pytest.approx(k["total_spend_usd"] / hours)


@pytest.mark.parametrize(("period", "message"), [
    ("2026-06-15..2026-06-12", "ends before it starts"),
    ("yesterday..today", "not an ISO date"),
    ("fortnight", "unknown period"),
])
def test_bad_periods_are_explained(ws: Workspace, period: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        ws.analytics.turns(period)


def test_raw_turns_csv_has_the_documented_columns(ledger: Workspace) -> None:
    buf = io.StringIO()
    assert ledger.analytics.turns_csv(buf, "7d", now=NOW) == 6
    reader = csv.DictReader(io.StringIO(buf.getvalue()))
    assert reader.fieldnames == [
        "at", "agent", "provider", "model", "outcome", "streamed", "input_tokens", "output_tokens",
        "cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "cost_usd", "api_cost_usd", "latency_s",
        "session", "turn", "attempt", "fallback_from",
    ] == list(TURN_FIELDS)
    rows = list(reader)
    assert [r["agent"] for r in rows] == ["sub", "coder", "local", "writer", "writer", "coder"]  # oldest first
    sub, local, failed, newest = rows[0], rows[2], rows[3], rows[5]
    assert sub["at"] == "2026-06-12T12:00:00+00:00" and sub["session"] == "old2"
    assert (sub["cost_usd"], sub["api_cost_usd"], sub["reasoning_tokens"]) == ("0.0", "0.25", "120")
    assert local["api_cost_usd"] == ""  # unknown API-equivalent
    assert (failed["outcome"], failed["input_tokens"], failed["latency_s"]) == ("RateLimitError", "0", "0.3")
    assert (newest["streamed"], newest["cache_write_tokens"], newest["model"]) == ("True", "500", "claude-sonnet-5-5")


def test_summary_csv_has_the_documented_columns(ledger: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "summary.csv"
    assert ledger.analytics.summary_csv(path, "provider", "30d", now=NOW) == 4
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == [
            "provider", "turns", "errors", "input_tokens", "output_tokens", "cache_read_tokens",
            "cache_write_tokens", "reasoning_tokens", "total_tokens", "cost_usd", "api_cost_usd", "avg_latency_s",
        ] == ["provider", *SUMMARY_FIELDS]
        rows = list(reader)
    assert [r["provider"] for r in rows] == ["openai", "claude-api", "claude-sdk", "ollama"]
    assert rows[0] == {"provider": "openai", "turns": "2", "errors": "1", "input_tokens": "12000",
                       "output_tokens": "1100", "cache_read_tokens": "1000", "cache_write_tokens": "0",
                       "reasoning_tokens": "0", "total_tokens": "14100", "cost_usd": "1.05", "api_cost_usd": "1.05",
                       "avg_latency_s": "2.5"}


async def test_running_agents_counts_turns_in_flight(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-openai-key-000")
    with serving(Server("slow", mode="endless")) as (srv,):
        ws.set_provider_setting("openai", "base_url", srv.url + "/v1")
        agent = ws.create_agent("busy", provider="openai", model="gpt-4.1")
        ws.create_agent("idle", provider="openai", model="gpt-4.1")
        started = asyncio.Event()

        async def consume() -> None:
            async for _ in agent.stream("go"):
                started.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(started.wait(), 5)
        assert ws.analytics.kpis("1h")["running_agents"] == 1
        assert ws.analytics.kpis("1h", provider="ollama")["running_agents"] == 0
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert ws.analytics.kpis("1h")["running_agents"] == 0


# --- the CLI --------------------------------------------------------------------------------------


def test_cli_period_range_filters_and_csv(open_ws: Any, isolated_env: Path, tmp_path: Path) -> None:
    """`ironspire analytics` reads the real clock, so the ledger is placed around the real now."""
    from ironspire.cli.app import app

    now = datetime.now(UTC)
    ws: Workspace = open_ws(isolated_env)  # the home the CLI opens
    _fill(ws, now.timestamp())
    ws.close()
    runner = CliRunner()

    def run(*args: str) -> Any:
        result = runner.invoke(app, ["analytics", *args])
        assert result.exit_code == 0, (result.output, result.exception)
        return result

    # from the start of the day two days ago to the end of today: r1-r5 (r6 is three days old)
    span = f"{(now - timedelta(days=2)).date().isoformat()}..{now.date().isoformat()}"
    data = json.loads(run("--period", span, "--json", "--by", "provider").output)
    assert data["kpis"]["period"] == span and data["kpis"]["turns"] == 4 and data["kpis"]["errors"] == 1
    assert {r["provider"] for r in data["by_provider"]} == {"claude-api", "openai", "ollama"}
    for period, turns in (("1h", 2), ("6h", 3), ("24h", 4), ("7d", 5), ("30d", 6), ("90d", 7), ("all", 8)):
        assert json.loads(run("--period", period, "--json").output)["kpis"]["turns"] == turns, period
    coder = json.loads(run("--period", "30d", "--agent", "coder", "--json").output)
    assert coder["kpis"]["total_tokens"] == 16750 and [r["agent"] for r in coder["by_agent"]] == ["coder"]

    summary, raw = tmp_path / "summary.csv", tmp_path / "turns.csv"
    assert "Wrote 4 rows" in run("--period", "30d", "--by", "agent", "--csv", str(summary)).output
    with summary.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["agent"] for r in rows] == ["coder", "writer", "sub", "local"]
    run("--period", "24h", "--provider", "openai", "--raw", "--csv", str(raw))
    with raw.open(newline="", encoding="utf-8") as fh:
        turns = list(csv.DictReader(fh))
    assert [(t["provider"], t["outcome"]) for t in turns] == [("openai", "RateLimitError"), ("openai", "ok")]
    human = " ".join(run("--period", "1h").output.split())  # rich wraps at the terminal's width
    assert "cache hit 53%" in human and "turns 2" in human and "agents 2" in human
    bad = runner.invoke(app, ["analytics", "--period", "2026-13-01.."])
    assert bad.exit_code != 0 and "not an ISO date" in str(bad.exception)
