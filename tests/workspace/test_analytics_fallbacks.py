"""How many turns a fallback route answered (the ``fallback_turns`` KPI, `ironspire analytics`)
and which requests those were (the Turns tab's ``fallback`` outcome), on both engines, over a
ledger of whole turns written by the store's own ``insert_usage``, every one known by hand.

The turns, at a fixed ``NOW`` (2026-06-15 12:00 UTC); a request is ``provider`` at its place
in the turn's chain (0 = the agent's own route), ``*`` marks the one that answered:

    turn  age    agent  requests                                                  by a fallback
    T1    15min  pal    openai 0 RateLimitError, claude-api 1 *                   yes (for openai)
    T2    20min  solo   openai 0 *                                                no
    T3    2h     bot    claude-api 0 Unavailable, openai 1 RateLimitError, google 2 *  yes (for claude-api)
    T4    3h     pal    openai 0 Unavailable, claude-api 1 Unavailable            no: the turn failed
    T5    2d     pal    claude-api 1 * (its own route was cooling down: skipped)  yes (for openai)
    T6    40d    bot    claude-api 0 Unavailable, openai 1 *                      yes (for claude-api)
    --    10d    pal    openai, a row from before the ledger linked turns         no

T3's openai request failed in the middle of the chain: it neither was meant nor answered, so a
provider filter on openai does not count T3. The periods 7d and 90d take in whole UTC days,
which the store otherwise reads from its daily sums (which know no routes).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ironspire.workspace import Workspace

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC).timestamp()
H, D = 3600.0, 86400.0
OPENAI, CLAUDE, GOOGLE = "openai/gpt-4.1", "claude-api/claude-sonnet-5-5", "google/gemini-3.8-flash"

#: (turn, age s, agent, [(route, outcome), ...] in chain order from ``first`` place, first place)
TURNS: list[tuple[int | None, float, str, list[tuple[str, str]], int]] = [
    (1, 0.25 * H, "pal", [(OPENAI, "RateLimitError"), (CLAUDE, "ok")], 0),
    (2, 0.33 * H, "solo", [(OPENAI, "ok")], 0),
    (3, 2 * H, "bot", [(CLAUDE, "ProviderUnavailable"), (OPENAI, "RateLimitError"), (GOOGLE, "ok")], 0),
    (4, 3 * H, "pal", [(OPENAI, "ProviderUnavailable"), (CLAUDE, "ProviderUnavailable")], 0),
    (5, 2 * D, "pal", [(CLAUDE, "ok")], 1),
    (6, 40 * D, "bot", [(CLAUDE, "ProviderUnavailable"), (OPENAI, "ok")], 0),
    (None, 10 * D, "pal", [(OPENAI, "ok")], 0),
]
OWN_ROUTE = {1: OPENAI, 2: OPENAI, 3: CLAUDE, 4: OPENAI, 5: OPENAI, 6: CLAUDE}


def fill_fallbacks(ws: Workspace, now: float = NOW) -> None:
    """The ledger above, each turn's requests a second apart in chain order."""
    rows = []
    for turn, age, agent, requests, first in TURNS:
        for i, (route, outcome) in enumerate(requests):
            place = first + i
            provider, _, model = route.partition("/")
            rows.append({
                "agent": agent, "at": now - age + i, "session": "s", "provider": provider, "model": model,
                "input_tokens": 10, "output_tokens": 5, "cost_usd": 0.01 if outcome == "ok" else 0.0,
                "latency_s": 0.5, "outcome": outcome, "streamed": False, "turn": turn,
                "attempt": None if turn is None else place,
                "fallback_from": OWN_ROUTE[turn] if turn is not None and place > 0 else None})
    ws.store.insert_usage(rows)


@pytest.fixture
def ledger(ws: Workspace) -> Workspace:
    fill_fallbacks(ws)
    return ws


# turns a fallback answered, by hand from the table: (period, agent, provider, group) -> turns
COUNTS = [
    ("all", None, None, None, 4), ("90d", None, None, None, 4), ("30d", None, None, None, 3),
    ("7d", None, None, None, 3), ("24h", None, None, None, 2), ("1h", None, None, None, 1),
    ("2026-06-13..2026-06-14", None, None, None, 1),  # T5 only: a range of whole days
    ("all", "pal", None, None, 2), ("all", "bot", None, None, 2), ("all", "solo", None, None, 0),
    ("24h", "bot", None, None, 1),
    ("all", None, "openai", None, 3),  # T1, T5 meant for it; T6 answered on it; not T3
    ("all", None, "claude-api", None, 4),  # T1, T5 answered on it; T3, T6 meant for it
    ("all", None, "google", None, 1), ("all", None, "mistral", None, 0),
    ("all", "pal", "openai", None, 2), ("24h", "bot", "openai", None, 0),
    ("all", None, None, "openai", 3), ("all", None, None, "google", 1), ("7d", None, None, "claude", 3),
]


@pytest.mark.parametrize(("period", "agent", "provider", "group", "turns"), COUNTS)
def test_fallback_turns_kpi_counts_the_turns_a_fallback_answered(
        ledger: Workspace, period: str, agent: str | None, provider: str | None, group: str | None,
        turns: int) -> None:
    a = ledger.analytics
    k = a.kpis(period, agent=agent, provider=provider, group=group, now=NOW)
    assert k["fallback_turns"] == turns
    # the Reliability tab's count of the same turns, for the same filters
    assert a.reliability(period, agent=agent, provider=provider, group=group, now=NOW)["fallbacks"]["turns"] == turns


#: the requests that answered their turn on a fallback route, newest first: (turn, provider)
ANSWERS = [(1, "claude-api"), (3, "google"), (5, "claude-api"), (6, "openai")]


@pytest.mark.parametrize(("period", "agent", "provider", "expected"), [
    ("all", None, None, ANSWERS), ("90d", None, None, ANSWERS), ("7d", None, None, ANSWERS[:3]),
    ("24h", None, None, ANSWERS[:2]), ("all", "pal", None, [ANSWERS[0], ANSWERS[2]]),
    ("all", None, "claude-api", [ANSWERS[0], ANSWERS[2]]),  # here a provider is the one that answered
    ("all", "solo", None, []),
])
def test_the_fallback_outcome_lists_exactly_the_requests_that_answered_on_a_fallback(
        ledger: Workspace, period: str, agent: str | None, provider: str | None,
        expected: list[tuple[int, str]]) -> None:
    page = ledger.analytics.turns_page(period, agent=agent, provider=provider, outcome="fallback", now=NOW)
    assert [(r["turn"], r["provider"]) for r in page["rows"]] == expected
    assert page["total"] == len(expected) and page["pages"] == 1
    assert all(r["outcome"] == "ok" and r["attempt"] > 0 and r["answered_by_fallback"] for r in page["rows"])
    # and they are the rows of the unfiltered page that say they answered on a fallback
    everything = ledger.analytics.turns_page(period, agent=agent, provider=provider, per_page=500, now=NOW)
    assert [r["id"] for r in everything["rows"] if r["answered_by_fallback"]] == [r["id"] for r in page["rows"]]


def test_fallback_outcome_pages_add_up_to_its_total(ledger: Workspace) -> None:
    a = ledger.analytics
    first = a.turns_page("90d", outcome="fallback", per_page=3, now=NOW)
    second = a.turns_page("90d", outcome="fallback", page=2, per_page=3, now=NOW)
    assert (first["total"], first["pages"], second["total"], second["pages"]) == (4, 2, 4, 2)
    assert [r["turn"] for r in first["rows"]] == [1, 3, 5] and [r["turn"] for r in second["rows"]] == [6]
    assert a.turns_page("90d", outcome="fallback", page=3, per_page=3, now=NOW)["rows"] == []
    # the successful requests are the fallback answers and the own routes' answers, apart
    ok = a.turns_page("90d", outcome="ok", per_page=500, now=NOW)
    assert ok["total"] == 6 and sum(r["answered_by_fallback"] for r in ok["rows"]) == first["total"]


def test_the_turns_tab_refuses_an_unknown_outcome_and_keeps_fallback(ledger: Workspace) -> None:
    from ironspire.errors import ConfigurationError
    from ironspire.views import analytics as panel

    found = panel.tab(ledger, "turns", panel.Filters(period="90d"), {"outcome": "fallback"}, now=NOW)
    assert found.data["outcome"] == "fallback" and found.data["total"] == 4
    assert {r["error_class"] for r in found.data["rows"]} == {None}
    with pytest.raises(ConfigurationError, match="outcome='fallbacks' is not an outcome"):
        panel.tab(ledger, "turns", panel.Filters(period="90d"), {"outcome": "fallbacks"}, now=NOW)


# --- the CLI --------------------------------------------------------------------------------------


def test_cli_says_how_many_turns_a_fallback_answered(open_ws: Any, isolated_env: Path) -> None:
    """`ironspire analytics` reads the real clock, so the ledger is placed around the real now."""
    from ironspire.cli.app import app

    ws: Workspace = open_ws(isolated_env)  # the home the CLI opens
    fill_fallbacks(ws, datetime.now(UTC).timestamp())
    ws.close()
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(app, ["analytics", *args])
        assert result.exit_code == 0, (result.output, result.exception)
        return result.output

    for args, turns in ((("--period", "24h"), 2), (("--period", "90d"), 4), (("--period", "7d"), 3),
                        (("--agent", "pal"), 2), (("--period", "24h", "--agent", "bot"), 1),
                        (("--provider", "openai"), 3), (("--provider", "google"), 1), (("--agent", "solo"), 0)):
        kpis = json.loads(run(*args, "--json"))["kpis"]
        assert kpis["fallback_turns"] == turns, args
        human = " ".join(run(*args).split())  # rich wraps at the terminal's width
        if turns:
            assert f"· {turns} answered by a fallback" in human, (args, human)
        else:
            assert "answered by a fallback" not in human and "turns 1" in human, (args, human)
    raw = json.loads(run("--period", "24h", "--raw", "--json"))
    assert raw["kpis"]["fallback_turns"] == 2


@pytest.mark.sqlite_only("SQLite's query planner")
def test_fallback_answers_of_a_provider_group_are_read_through_their_own_index(ws: Workspace) -> None:
    """Fallback answers are few; with a provider filter SQLite would rather walk every request of
    the provider (ix_usage_provider_at: 130 ms for the Claude group over 90 days of a 1M-row
    ledger) than the partial index that holds only them (20 ms)."""
    from sqlalchemy import event

    fill_fallbacks(ws, NOW)
    ordinary = [{"agent": "solo", "at": NOW - 3 * D + i, "session": "s", "provider": "claude-api",
                 "model": "claude-sonnet-5-5", "input_tokens": 1, "output_tokens": 1, "cost_usd": 0.0,
                 "latency_s": 0.1, "outcome": "ok", "streamed": False, "turn": 100 + i, "attempt": 0,
                 "fallback_from": None} for i in range(3000)]
    ws.store.insert_usage(ordinary)
    engine = ws.store.ledger.engine
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    plans: list[str] = []

    def explain(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "usage" in statement:
            plans.extend(str(r[3]) for r in cursor.connection.execute("EXPLAIN QUERY PLAN " + statement, params))

    event.listen(engine, "before_cursor_execute", explain)
    try:
        page = ws.analytics.turns_page("90d", outcome="fallback", group="claude", now=NOW)
        session = ws.analytics.turns_page("session", outcome="fallback", group="claude", now=NOW)
    finally:
        event.remove(engine, "before_cursor_execute", explain)
    # T1 and T5 answered on claude-api; every row here is of one recorded session
    assert page["total"] == len(page["rows"]) == 2 and session["total"] == 2
    assert any("ix_usage_fallback_at" in p for p in plans)
    assert not any("ix_usage_provider_at" in p for p in plans), plans
