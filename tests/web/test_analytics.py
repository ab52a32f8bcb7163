"""The Analytics panel in-process: every tab and its JSON twin over the hand-made ledger of
``tests/workspace/test_analytics_kpis.py`` (values computed by hand from the KPI definitions),
filters in the URL, bad filters refused, CSV exports holding exactly the filtered rows, charts as
SVG with tooltips, and an honest empty state."""

from __future__ import annotations

import csv
import html
import io
import re
import time

import pytest

from web.conftest import Browser
from workspace.test_analytics_kpis import EXPECTED, _fill

PERIODS = ("1h", "6h", "24h", "7d", "30d", "90d")


def fill(web: Browser) -> float:
    now = time.time()
    for name in ("coder", "writer", "local", "sub"):
        web.ws.create_agent(name, provider="openai", model="gpt-4.1")
    _fill(web.ws, now)
    return now


@pytest.mark.parametrize("period", PERIODS)
async def test_overview_twin_has_the_six_kpis_as_defined(web: Browser, period: str) -> None:
    fill(web)
    _rows, spend, api, agents, tokens, cache_read, prompt, turns, errors, hours = EXPECTED[period]
    k = (await web.api(f"/api/analytics/overview?period={period}"))["kpis"]
    assert k["total_spend_usd"] == pytest.approx(spend) and k["api_equivalent_usd"] == pytest.approx(api)
    assert (k["active_agents"], k["total_tokens"], k["turns"], k["errors"]) == (agents, tokens, turns, errors)
    assert k["cache_hit_rate"] == pytest.approx(cache_read / prompt)
    assert k["burn_rate_usd_per_hour"] == pytest.approx(spend / hours)
    page = (await web.get(f"/analytics/overview?period={period}")).text
    shown = dict(re.findall(r'data-kpi="(\w+)"[^>]*><span class="name">[^<]+</span><span class="value">([^<]+)<', page))
    assert shown["turns"] == str(turns) and shown["active_agents"] == str(agents)


async def test_agent_and_group_filters_change_the_numbers(web: Browser) -> None:
    fill(web)
    everyone = (await web.api("/api/analytics/overview?period=90d"))["kpis"]
    writer = (await web.api("/api/analytics/overview?period=90d&agent=writer"))["kpis"]
    openai = (await web.api("/api/analytics/overview?period=90d&group=openai"))["kpis"]
    assert (everyone["turns"], writer["turns"], openai["turns"]) == (7, 2, 2)
    assert writer["total_spend_usd"] == pytest.approx(3.05) and openai["total_spend_usd"] == pytest.approx(1.05)


async def test_every_tab_renders_with_its_twin_and_keeps_the_filters_in_links(web: Browser) -> None:
    fill(web)
    for tab in ("overview", "fleet", "models", "turns", "reliability"):
        page = await web.get(f"/analytics/{tab}?period=7d&agent=coder")
        assert page.status_code == 200, page.text
        assert f'href="/api/analytics/{tab}?period=7d&amp;agent=coder"' in page.text
        assert 'href="/analytics/fleet?period=7d&amp;agent=coder"' in page.text
        assert 'style="' not in page.text  # the CSP allows no inline style
        twin = await web.api(f"/api/analytics/{tab}?period=7d&agent=coder")
        assert twin["tab"] == tab and twin["filters"]["agent"] == "coder"
    fleet = await web.api("/api/analytics/fleet?period=7d&sort=turns")
    assert [r["turns"] for r in fleet["rows"]] == [2, 1, 1, 1] and fleet["rows"][0]["agent"] == "coder"
    assert fleet["dir"] == "desc"
    fleet_page = (await web.get("/analytics/fleet?period=7d")).text
    assert '<a href="/agents/coder">coder</a>' in fleet_page
    models = await web.api("/api/analytics/models?period=7d")
    sdk = next(r for r in models["providers"] if r["provider"] == "claude-sdk")
    assert (sdk["cost_usd"], sdk["api_cost_usd"], sdk["billed"]) == (0.0, 0.25, False)
    turns = await web.api("/api/analytics/turns?period=24h&outcome=error")
    (failed,) = turns["rows"]
    assert (failed["outcome"], failed["error_class"]) == ("RateLimitError", "rate_limited")


async def test_charts_are_svg_with_labelled_axes_and_tooltips(web: Browser) -> None:
    fill(web)
    page = (await web.get("/analytics/overview?period=24h")).text
    assert page.count("<svg viewBox") >= 2
    assert "spend (USD)" in page and "tokens per bucket" in page and "time (UTC)" in page
    assert re.search(r'data-series="coder" data-value="0\.1"><title>coder · [^<]+ · \$0\.1</title>', page)
    models = (await web.get("/analytics/models?period=90d")).text
    assert "API-equivalent" in models and 'data-chart="models-cost"' in models


async def test_an_empty_period_says_so(web: Browser) -> None:
    page = (await web.get("/analytics/overview?period=1h")).text
    assert 'id="empty-state"' in page and "<svg viewBox" not in page
    assert (await web.api("/api/analytics/overview?period=1h"))["kpis"]["turns"] == 0


async def test_bad_filters_are_refused_by_name(web: Browser) -> None:
    for query, word in (("period=2w", "period"), ("group=acme", "group"), ("period=custom", "custom"),
                        ("agent=nobody", "nobody")):
        answer = await web.get(f"/api/analytics/overview?{query}")
        assert answer.status_code == 400 and word in answer.json()["message"], query
    assert (await web.get("/api/analytics/turns?outcome=weird")).status_code == 400


async def test_csv_exports_hold_exactly_the_filtered_rows(web: Browser) -> None:
    fill(web)
    answer = await web.get("/analytics/export/turns.csv?period=90d&agent=writer")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert [r["outcome"] for r in rows] == ["ok", "RateLimitError", "ok"] and {r["agent"] for r in rows} == {"writer"}
    assert "usage_state" in rows[0] and "price" in rows[0]
    summary = list(csv.DictReader(io.StringIO((await web.get(
        "/analytics/export/summary.csv?period=30d&by=provider")).text)))
    assert {r["provider"]: int(r["turns"]) for r in summary} == {"openai": 2, "claude-api": 2, "ollama": 1,
                                                                 "claude-sdk": 1}
    assert "usage_unknown" in summary[0]
    custom = list(csv.DictReader(io.StringIO((await web.get(
        "/analytics/export/turns.csv?period=custom&from=2000-01-01&to=2000-01-02")).text)))
    assert custom == []


async def test_stamp_moves_when_a_request_is_recorded(web: Browser) -> None:
    before = (await web.api("/api/analytics/stamp"))["stamp"]
    fill(web)
    assert (await web.api("/api/analytics/stamp"))["stamp"] == before + 9


async def test_a_price_set_in_the_page_is_the_one_the_cli_shows(web: Browser) -> None:
    from typer.testing import CliRunner

    from ironspire.cli.app import app as cli

    answer = await web.post("/analytics/prices", {"provider": "bedrock", "model": "anthropic.claude-x",
                                                  "input": "2.5", "output": "10"})
    assert answer.status_code == 303 and "your+price" in answer.headers["location"]
    shown = CliRunner().invoke(cli, ["models", "price", "bedrock", "anthropic.claude-x", "--json"])
    assert '"source": "override"' in shown.output and '"input": 2.5' in shown.output
    refused = await web.post("/analytics/prices", {"provider": "bedrock", "model": "x", "input": "cheap"},
                             json_answer=True)
    assert refused.status_code == 400 and "input price" in refused.json()["message"]
    assert web.ws.price("bedrock", "x") is None or web.ws.price("bedrock", "x")[1] != "override"  # type: ignore[index]
    cleared = await web.post("/analytics/prices", {"provider": "bedrock", "model": "anthropic.claude-x", "clear": "1"},
                             json_answer=True)
    assert cleared.json()["source"] == "unknown"


async def test_turns_twin_with_the_fallback_outcome_keeps_only_the_answers_of_fallback_routes(
        database_url: str | None, web: Browser) -> None:
    """On both engines (``database_url`` first, so the web app's workspace opens on it)."""
    from workspace.test_analytics_fallbacks import ANSWERS, fill_fallbacks

    assert web.ws.store.postgres == (database_url is not None)
    fill_fallbacks(web.ws, time.time())
    for period, expected in (("90d", ANSWERS), ("7d", ANSWERS[:3]), ("24h", ANSWERS[:2])):
        turns = await web.api(f"/api/analytics/turns?period={period}&outcome=fallback")
        assert turns["outcome"] == "fallback" and turns["total"] == len(expected)
        assert [(r["turn"], r["provider"]) for r in turns["rows"]] == expected
        assert all(r["answered_by_fallback"] and r["attempt"] > 0 and r["outcome"] == "ok" for r in turns["rows"])
        overview = await web.api(f"/api/analytics/overview?period={period}")
        assert overview["kpis"]["fallback_turns"] == len(expected)
    pal = await web.api("/api/analytics/turns?period=90d&agent=pal&outcome=fallback")
    assert [r["turn"] for r in pal["rows"]] == [1, 5]
    google = await web.api("/api/analytics/turns?period=90d&group=google&outcome=fallback")
    assert [r["turn"] for r in google["rows"]] == [3]
    everything = await web.api("/api/analytics/turns?period=90d")
    assert everything["total"] == 12 and sum(r["answered_by_fallback"] for r in everything["rows"]) == 4
    refused = await web.get("/api/analytics/turns?period=90d&outcome=fallbacks")
    assert refused.status_code == 400 and "outcome='fallbacks' is not an outcome" in refused.json()["message"]

    card = re.search(r'<a class="flag" data-fallback-turns="(\d+)" href="([^"]+)">', (await web.get(
        "/analytics/overview?period=90d&agent=pal")).text)
    assert card is not None and card[1] == "2"  # the Turns card links to the requests behind its count
    linked = await web.api("/api" + html.unescape(card[2]))
    assert linked["outcome"] == "fallback" and [r["turn"] for r in linked["rows"]] == [1, 5]
    quiet = (await web.get("/analytics/overview?period=90d&agent=solo")).text
    assert "data-fallback-turns" not in quiet
    page = (await web.get("/analytics/turns?period=90d&outcome=fallback")).text
    assert '<option value="fallback" selected>answered by a fallback</option>' in page
    assert re.findall(r'<tr data-turn="\d+"[^>]*data-turn-of="(\d+)"', page) == ["1", "3", "5", "6"]
    assert "4 request(s)" in page
    other = (await web.get("/analytics/turns?period=90d")).text
    assert '<option value="fallback" >answered by a fallback</option>' in other
