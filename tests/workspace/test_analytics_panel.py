"""The Analytics panel's breakdowns (time series, fleet, models and providers, turns, reliability)
over the hand-made ledger of ``test_analytics_kpis`` (see its table), against values computed by
hand; and usage that is never silently zero: unknown counts, unknown prices, the user's prices.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from typer.testing import CliRunner

from ironspire.analytics import EXPORT_FIELDS, SUMMARY_EXPORT_FIELDS, bucket_width
from ironspire.errors import ConfigurationError
from ironspire.workspace import Workspace
from workspace.loopback import Server, serving
from workspace.test_analytics_kpis import NOW, D, H, _fill


@pytest.fixture
def ledger(ws: Workspace) -> Workspace:
    _fill(ws)
    ws.session_started = NOW - 1 * H
    return ws


def test_bucket_widths_keep_every_period_within_120_buckets() -> None:
    assert [bucket_width(s) for s in (H, 6 * H, 24 * H, 7 * D, 30 * D, 90 * D)] == \
        [60.0, 300.0, 900.0, 3 * 3600.0, 86400.0, 86400.0]


def test_spend_over_time_is_stacked_by_agent_in_the_rows_buckets(ledger: Workspace) -> None:
    s = ledger.analytics.series("24h", now=NOW)
    assert s["width"] == 900.0 and s["start"] == NOW - 24 * H and s["end"] == NOW
    assert len(s["buckets"]) == 97 and s["buckets"][0] == NOW - 24 * H and s["buckets"][-1] == NOW
    at = {b: i for i, b in enumerate(s["buckets"])}
    # coder: r1 (0.10, 15 min ago) and r5 (0.02, 12 h ago); writer: r2 (0.05, 30 min ago); local: Ollama, $0
    assert list(s["spend"]) == ["coder", "writer", "local"]
    coder, writer = s["spend"]["coder"], s["spend"]["writer"]
    assert coder[at[NOW - 900]] == pytest.approx(0.10) and coder[at[NOW - 12 * H]] == pytest.approx(0.02)
    assert sum(coder) == pytest.approx(0.12) and sum(writer) == pytest.approx(0.05)
    assert writer[at[NOW - 1800]] == pytest.approx(0.05)
    assert sum(s["spend"]["local"]) == 0
    # tokens: input includes cache writes; r1 1000+500 in, 200 out, 3000 cache read, 50 reasoning
    t = s["tokens"]
    assert (t["input"][at[NOW - 900]], t["output"][at[NOW - 900]], t["cache_read"][at[NOW - 900]],
            t["reasoning"][at[NOW - 900]]) == (1500, 200, 3000, 50)
    assert (sum(t["input"]), sum(t["output"]), sum(t["cache_read"])) == (1500 + 2000 + 400 + 100, 430, 4900)


def test_an_empty_period_has_every_bucket_and_no_agents(ws: Workspace) -> None:
    s = ws.analytics.series("1h", now=NOW)
    assert s["spend"] == {} and len(s["buckets"]) == 61 and sum(s["tokens"]["input"]) == 0


def test_fleet_has_each_agents_sums_and_latest_route(ledger: Workspace) -> None:
    rows = {r["agent"]: r for r in ledger.analytics.fleet("7d", now=NOW)}
    assert set(rows) == {"coder", "writer", "local", "sub"}
    coder = rows["coder"]
    assert (coder["turns"], coder["errors"], coder["provider"], coder["model"]) == (2, 0, "claude-api",
                                                                                    "claude-sonnet-5-5")
    assert coder["cost_usd"] == pytest.approx(0.12) and coder["total_tokens"] == 4700 + 1050
    assert coder["last_at"] == NOW - 0.25 * H
    writer = rows["writer"]
    assert (writer["turns"], writer["errors"]) == (1, 1)
    assert rows["sub"]["api_cost_usd"] == pytest.approx(0.25) and rows["sub"]["cost_usd"] == 0


def test_models_and_providers_show_api_equivalent_beside_billed(ledger: Workspace) -> None:
    by_provider = ledger.analytics.breakdown("provider", "90d", now=NOW)
    assert [r["provider"] for r in by_provider] == ["claude-api", "openai", "claude-sdk", "ollama"]
    sdk = next(r for r in by_provider if r["provider"] == "claude-sdk")
    assert (sdk["cost_usd"], sdk["api_cost_usd"]) == (0.0, 0.25)
    ollama = next(r for r in by_provider if r["provider"] == "ollama")
    assert (ollama["cost_usd"], ollama["api_cost_usd"], ollama["api_cost_unknown"]) == (0.0, 0.0, 1)
    by_model = ledger.analytics.breakdown("model", "90d", now=NOW)
    first = by_model[0]
    assert (first["provider"], first["model"], first["turns"]) == ("claude-api", "claude-sonnet-5-5", 3)
    assert first["cost_usd"] == pytest.approx(3.12)


def test_turns_are_paged_newest_first_and_filter_by_outcome(ledger: Workspace) -> None:
    page = ledger.analytics.turns_page("all", per_page=4, now=NOW)
    assert (page["total"], page["pages"]) == (9, 3)
    assert [r["at"] for r in page["rows"]] == [NOW - 0.25 * H, NOW - 0.5 * H, NOW - 0.75 * H, NOW - 3 * H]
    last = ledger.analytics.turns_page("all", per_page=4, page=3, now=NOW)
    assert [r["at"] for r in last["rows"]] == [NOW - 120 * D]
    (failed,) = ledger.analytics.turns_page("all", outcome="error", now=NOW)["rows"]
    assert (failed["outcome"], failed["agent"], failed["provider"]) == ("RateLimitError", "writer", "openai")
    assert ledger.analytics.turns_page("all", outcome="RateLimitError", now=NOW)["total"] == 1
    assert ledger.analytics.turns_page("all", outcome="ok", group="openai", now=NOW)["total"] == 3
    with pytest.raises(ConfigurationError, match="page"):
        ledger.analytics.turns_page("all", page=0)


def test_reliability_error_rates_by_class_and_latency_percentiles(ledger: Workspace) -> None:
    rel = ledger.analytics.reliability("all", now=NOW)
    rows = {r["provider"]: r for r in rel["providers"]}
    openai = rows["openai"]
    # r2, r3 (429), r7, r9: 4 requests, one rate-limited; ok latencies 2.0, 3.0, 2.5
    assert (openai["requests"], openai["ok"], openai["errors"]["rate_limited"]) == (4, 3, 1)
    assert openai["error_rate"]["rate_limited"] == 0.25 and openai["error_rate"]["auth"] == 0.0
    assert (openai["p50_s"], openai["p95_s"]) == (2.5, 3.0)
    claude = rows["claude-api"]  # 1.0, 1.0, 1.5: nearest rank 2 and 3
    assert (claude["p50_s"], claude["p95_s"]) == (1.0, 1.5)
    assert (rows["ollama"]["p50_s"], rows["ollama"]["p95_s"]) == (4.0, 4.0)
    assert rel["transitions"] == []


def test_health_transitions_are_kept_and_shown_for_the_period(ledger: Workspace) -> None:
    ledger.store.ledger.add_transition(NOW - 2 * H, "openai", "reachable", "rate_limited", "429")
    ledger.store.ledger.add_transition(NOW - 0.5 * H, "openai", "rate_limited", "reachable", None)
    ledger.store.ledger.add_transition(NOW - 3 * D, "google", None, "auth_failed", None)
    rel = ledger.analytics.reliability("24h", now=NOW)
    assert [(t["provider"], t["state_from"], t["state_to"]) for t in rel["transitions"]] == [
        ("openai", "reachable", "rate_limited"), ("openai", "rate_limited", "reachable")]
    assert len(ledger.analytics.reliability("7d", group="google", now=NOW)["transitions"]) == 1


def test_the_monitor_reports_each_change_of_state_once(open_ws: Any, tmp_path: Any) -> None:
    from ironspire.errors import RateLimitError
    from ironspire.health import HealthMonitor
    from ironspire.transport import Transport

    seen: list[tuple[str, str | None, str]] = []
    monitor = HealthMonitor(Transport(), lambda pid: None,  # type: ignore[arg-type,return-value]
                            provider_ids=lambda: ["openai"], is_enabled=lambda pid: True)
    monitor.transitions.append(lambda pid, before, status: seen.append((pid, before, status.state.value)))
    monitor.observe("openai", None, 0.1)
    monitor.observe("openai", None, 0.1)
    monitor.observe("openai", RateLimitError("openai", "slow down"), 0.1)
    assert seen == [("openai", None, "reachable"), ("openai", "reachable", "rate_limited")]


def test_unknown_usage_and_unknown_cost_are_counted_never_zero(ledger: Workspace) -> None:
    ledger.store.insert_usage([dict(
        at=NOW - 60, session="x", agent="local", provider="custom-box", model="m", input_tokens=0,
        output_tokens=0, cache_read_tokens=0, cache_write_tokens=0, reasoning_tokens=0, cost_usd=None,
        api_cost_usd=None, latency_s=0.5, outcome="ok", streamed=True, usage_state="unknown")])
    k = ledger.analytics.kpis("1h", now=NOW)
    assert (k["turns"], k["usage_unknown_turns"], k["cost_unknown_turns"], k["turns_without_usage"]) == (3, 1, 1, 1)
    assert k["total_spend_usd"] == pytest.approx(0.15)  # the unknown row adds nothing it does not know
    out = "".join(ledger.analytics.iter_turns_csv("1h", fields=EXPORT_FIELDS, now=NOW))
    rows = list(csv.DictReader(io.StringIO(out)))
    unknown = next(r for r in rows if r["provider"] == "custom-box")
    assert (unknown["usage_state"], unknown["input_tokens"], unknown["cost_usd"]) == ("unknown", "", "")
    summary = io.StringIO()
    ledger.analytics.summary_csv(summary, "provider", "1h", fields=SUMMARY_EXPORT_FIELDS, now=NOW)
    box = next(r for r in csv.DictReader(io.StringIO(summary.getvalue())) if r["provider"] == "custom-box")
    assert (box["usage_unknown"], box["cost_unknown"]) == ("1", "1")


def test_csv_holds_exactly_the_filtered_rows(ledger: Workspace) -> None:
    out = "".join(ledger.analytics.iter_turns_csv("90d", agent="writer", now=NOW))
    rows = list(csv.DictReader(io.StringIO(out)))
    iso = [datetime.fromtimestamp(NOW - age, UTC).isoformat(timespec="seconds") for age in (60 * D, 0.75 * H, 0.5 * H)]
    assert [r["at"] for r in rows] == iso
    assert {r["agent"] for r in rows} == {"writer"}
    assert [r["outcome"] for r in rows] == ["ok", "RateLimitError", "ok"]
    assert "".join(ledger.analytics.iter_turns_csv("1h", group="ollama", now=NOW)).count("\n") == 1  # header


async def test_a_turn_without_usage_is_unknown_and_a_price_the_user_sets_is_kept(open_ws: Any) -> None:
    from ironspire.catalog.providers import CustomEndpoint

    ws: Workspace = open_ws()
    try:
        with serving(Server("quiet", "no_usage"), Server("counted")) as (quiet, counted):
            ws.add_custom_endpoint(CustomEndpoint("Quiet", quiet.url + "/v1", "m"))
            ws.add_custom_endpoint(CustomEndpoint("Counted", counted.url + "/v1", "m"))
            await ws.create_agent("q", provider="custom-quiet", model="m").send("hello")
            agent = ws.create_agent("c", provider="custom-counted", model="m")
            await agent.send("before a price")  # a custom endpoint has no known price
            assert ws.price("custom-counted", "m") is None
            ws.set_price("custom-counted", "m", input=2.0, output=8.0, cache_read=0.5)
            await agent.send("after")
            ws.set_price("custom-counted", "m", input=1.0, output=1.0)  # later: past rows keep theirs
        rows = ws.analytics.turns()
    finally:
        await ws.aclose()
    quiet_row, unpriced, priced = rows
    assert (quiet_row["usage_state"], quiet_row["cost_usd"]) == ("unknown", None)
    assert (unpriced["usage_state"], unpriced["cost_usd"], unpriced["price"]) == ("reported", None, None)
    # 60 uncached in, 40 cache read, 20 out: (60*2 + 40*0.5 + 20*8) / 1e6
    assert priced["cost_usd"] == pytest.approx(300e-6)
    assert json.loads(priced["price"]) == {"input": 2.0, "output": 8.0, "cache_read": 0.5, "cache_write": 0.0,
                                           "source": "override"}


def test_prices_refuse_bad_figures_and_survive_a_reopen(open_ws: Any, tmp_path: Any) -> None:
    ws: Workspace = open_ws()
    with pytest.raises(ConfigurationError, match="input price"):
        ws.set_price("openai", "gpt-4.1", input=-1)
    with pytest.raises(ConfigurationError, match="openaii"):
        ws.set_price("openaii", "gpt-4.1", input=1)
    assert ws.price("openai", "gpt-4.1") is not None and ws.price("openai", "gpt-4.1")[1] == "catalog"  # type: ignore[index]
    ws.set_price("openai", "gpt-4.1", input=1.5, output=6)
    ws.close()
    again: Workspace = open_ws()
    try:
        price, source = again.price("openai", "gpt-4.1")  # type: ignore[misc]
        assert (price.input, price.output, source) == (1.5, 6.0, "override")
        assert again.clear_price("openai", "gpt-4.1") and not again.clear_price("openai", "gpt-4.1")
        assert again.price("openai", "gpt-4.1")[1] == "catalog"  # type: ignore[index]
    finally:
        again.close()


def test_models_price_command_sets_shows_and_clears(tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
                                                    memory_keyring: Any) -> None:
    from ironspire.cli.app import app

    monkeypatch.setenv("IRONSPIRE_HOME", str(tmp_path / "home"))
    runner = CliRunner()
    shown = runner.invoke(app, ["models", "price", "custom-none", "m", "--json"])
    assert shown.exit_code != 0  # no such custom endpoint: a clear error, nothing written
    done = runner.invoke(app, ["models", "price", "bedrock", "anthropic.claude-x", "--input", "2.5", "--output",
                               "10", "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output) == {"provider": "bedrock", "model": "anthropic.claude-x", "source": "override",
                                       "price": {"input": 2.5, "output": 10.0, "cache_read": 0.0,
                                                 "cache_write": 0.0}}
    text = runner.invoke(app, ["models", "price", "bedrock", "anthropic.claude-x"])
    assert "your price" in text.output and "$2.5" in text.output
    cleared = runner.invoke(app, ["models", "price", "bedrock", "anthropic.claude-x", "--clear", "--json"])
    assert json.loads(cleared.output)["source"] == "unknown"


def test_daily_sums_agree_with_the_rows_as_the_ledger_grows(ws: Workspace) -> None:
    """Whole days come from the daily sums, partial days from the rows: every period, filter and
    group must equal the sums of the raw rows, also after rows are added between two reads."""
    import random

    rng = random.Random(7)
    agents, providers = ("a", "b", "c"), ("openai", "claude-api", "custom-x")

    def rows(n: int) -> list[dict[str, Any]]:
        return [dict(at=NOW - rng.random() * 40 * D, session="s", agent=rng.choice(agents),
                     provider=rng.choice(providers), model="m", input_tokens=rng.randint(0, 999),
                     output_tokens=rng.randint(0, 99), cache_read_tokens=rng.randint(0, 9), cache_write_tokens=0,
                     reasoning_tokens=0, cost_usd=rng.choice((None, 0.25, 0.5)), api_cost_usd=None,
                     latency_s=rng.random(), outcome=rng.choice(("ok", "ok", "RateLimitError")), streamed=False,
                     usage_state=rng.choice(("reported", "unknown", None))) for _ in range(n)]

    def check() -> None:
        every = ws.store.usage_rows(ws.analytics._filter(ws.analytics.window("all"), None, None))
        for period in ("24h", "7d", "30d", "90d", "all", "2026-05-20..2026-06-01"):
            w = ws.analytics.window(period, now=NOW)
            for provider in (None, "openai"):
                f = ws.analytics._filter(w, None, provider)
                (got,) = ws.store.ledger_totals(f)
                mine = [r for r in every if (w.start is None or r["at"] >= w.start)
                        and (w.end is None or r["at"] < w.end) and provider in (None, r["provider"])]
                ok = [r for r in mine if r["outcome"] == "ok"]
                assert (got["turns"], got["errors"]) == (len(ok), len(mine) - len(ok)), period
                assert got["input_tokens"] == sum(r["input_tokens"] for r in mine), period
                assert got["cost_usd"] == pytest.approx(sum(r["cost_usd"] or 0 for r in mine)), period
                assert got["cost_unknown"] == sum(1 for r in ok if r["cost_usd"] is None), period
                assert got["usage_unknown"] == sum(1 for r in ok if r["usage_state"] == "unknown"), period

    ws.store.insert_usage(rows(300))
    check()
    ws.store.insert_usage(rows(200))  # after the daily sums were made: they catch up
    check()


def test_daily_sums_made_a_few_rows_at_a_time_are_the_same(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first summing of a large ledger goes in chunks of row ids (short write transactions):
    the sums must not depend on where the chunks fall."""
    from ironspire.store import ledger as store_ledger

    _fill(ws)
    ws.store.insert_usage([dict(at=NOW - 2 * D - 60 * i, session="s", agent="coder", provider="openai", model="m",
                                input_tokens=i, output_tokens=1, cache_read_tokens=0, cache_write_tokens=0,
                                reasoning_tokens=0, cost_usd=0.5, api_cost_usd=None, latency_s=0.25 * i,
                                outcome="ok" if i % 4 else "RateLimitError", streamed=False) for i in range(40)])
    monkeypatch.setattr(store_ledger, "REFRESH_CHUNK", 7)
    assert ws.store.ledger.refresh() == 49
    for period in ("7d", "90d", "all"):
        (chunked,) = ws.store.ledger_totals(ws.analytics._filter(ws.analytics.window(period, now=NOW), None, None))
        (plain,) = ws.store.usage_totals(ws.analytics._filter(ws.analytics.window(period, now=NOW), None, None))
        assert (chunked["turns"], chunked["errors"], chunked["input_tokens"]) == \
            (plain["turns"], plain["errors"], plain["input_tokens"]), period
        assert chunked["cost_usd"] == pytest.approx(plain["cost_usd"]), period


def test_percentiles_by_index_offset_equal_the_ones_ranked_in_memory(ledger: Workspace,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from ironspire.store import ledger as store_ledger

    everyone_in_memory = ledger.analytics.reliability("all", now=NOW)
    in_memory = ledger.analytics.reliability("all", agent="writer", now=NOW)
    monkeypatch.setattr(store_ledger, "SORT_IN_MEMORY", 0)  # what a big ledger does
    by_offset = ledger.analytics.reliability("all", agent="writer", now=NOW)
    assert [(r["provider"], r["p50_s"], r["p95_s"]) for r in by_offset["providers"]] == \
        [(r["provider"], r["p50_s"], r["p95_s"]) for r in in_memory["providers"]]
    # writer's ok latencies: openai 2.0 and 2.5; claude-api 1.5
    assert {r["provider"]: (r["p50_s"], r["p95_s"]) for r in by_offset["providers"]} == \
        {"openai": (2.0, 2.5), "claude-api": (1.5, 1.5)}
    everyone = ledger.analytics.reliability("all", now=NOW)  # through the latency buckets
    assert [(r["provider"], r["p50_s"], r["p95_s"]) for r in everyone["providers"]] == \
        [(r["provider"], r["p50_s"], r["p95_s"]) for r in everyone_in_memory["providers"]]
    assert {r["provider"]: (r["p50_s"], r["p95_s"]) for r in everyone["providers"]}["openai"] == (2.5, 3.0)


def test_percentiles_through_the_latency_buckets_are_exact(ws: Workspace) -> None:
    """The buckets only find where a rank lies; the value is read from the rows, so every
    quantile equals the nearest-rank value of the sorted latencies, for every period and group,
    with ties, values on bucket bounds, and rows added after the sums were made."""
    import math
    import random

    from ironspire.store import latency

    rng = random.Random(11)
    ties = [latency.bounds(b)[0] for b in (40, 41, 120)]  # values exactly on bucket bounds

    def rows(n: int) -> list[dict[str, Any]]:
        return [dict(at=NOW - rng.random() * 40 * D, session="s", agent=rng.choice(("a", "b")),
                     provider=rng.choice(("openai", "claude-api", "custom-x")), model="m", input_tokens=1,
                     output_tokens=1, cache_read_tokens=0, cache_write_tokens=0, reasoning_tokens=0, cost_usd=0.0,
                     api_cost_usd=None, outcome=rng.choice(("ok", "ok", "ok", "RateLimitError")), streamed=False,
                     latency_s=rng.choice((rng.lognormvariate(0, 1.5), rng.choice(ties), 0.0, 5000.0)),
                     usage_state="reported") for _ in range(n)]

    def check() -> None:
        every = ws.analytics.turns("all")
        for period in ("24h", "7d", "30d", "all", "2026-05-20..2026-06-01"):
            w = ws.analytics.window(period, now=NOW)
            for group in (None, "claude", "custom"):
                got = {r["provider"]: (r["p50_s"], r["p95_s"])
                       for r in ws.analytics.reliability(period, group=group, now=NOW)["providers"]}
                for provider in {r["provider"] for r in every}:
                    values = sorted(r["latency_s"] for r in every if r["provider"] == provider
                                    and r["outcome"] == "ok" and (w.start is None or r["at"] >= w.start)
                                    and (w.end is None or r["at"] < w.end))
                    if not values or (group == "claude" and provider != "claude-api") or \
                            (group == "custom" and provider != "custom-x"):
                        continue
                    want = tuple(values[max(1, math.ceil(q * len(values))) - 1] for q in (0.5, 0.95))
                    assert got[provider] == want, (period, group, provider)

    ws.store.insert_usage(rows(400))
    check()
    ws.store.insert_usage(rows(150))  # after the sums were made: they catch up
    check()


def test_latency_buckets_hold_exactly_the_values_between_their_bounds() -> None:
    import random

    from ironspire.store import latency

    rng = random.Random(5)
    values = [0.0, -1.0, 2.0 ** latency.E_MIN, 2.0 ** latency.E_MAX, 1e12, 1.0, 1.0625, 1.0624999999999998]
    values += [rng.lognormvariate(0, 4) for _ in range(20000)]
    for x in values:
        low, high = latency.bounds(latency.bucket(x))
        assert (low is None or low <= x) and (high is None or x < high), x
    assert latency.bucket(1.0625) == latency.bucket(1.0) + 1  # a bound belongs to the bucket above it


def test_a_groups_turns_are_its_rows_newest_first_page_by_page(ws: Workspace) -> None:
    """A provider group's page merges one newest-first walk per provider: every page must hold
    exactly the group's rows in the order of the whole ledger (ties on time by row id)."""
    import random

    rng = random.Random(3)
    times = [NOW - rng.random() * 20 * D for _ in range(120)] + [NOW - 5 * H] * 6  # some at the same instant
    ws.store.insert_usage([dict(
        at=at, session="s", agent=rng.choice(("a", "b")), provider=rng.choice(("claude-api", "claude-sdk", "custom-x",
                                                                                "custom-y", "openai")),
        model="m", input_tokens=i, output_tokens=0, cache_read_tokens=0, cache_write_tokens=0, reasoning_tokens=0,
        cost_usd=0.0, api_cost_usd=None, latency_s=0.1, outcome=rng.choice(("ok", "ok", "RateLimitError")),
        streamed=False, usage_state="reported") for i, at in enumerate(times)])
    every = ws.analytics.turns_page("all", per_page=500, now=NOW)["rows"]
    assert [r["at"] for r in every] == sorted((r["at"] for r in every), reverse=True)
    for group, members in (("claude", ("claude-api", "claude-sdk")), ("custom", ("custom-x", "custom-y"))):
        for outcome in (None, "error"):
            want = [r["id"] for r in every if r["provider"] in members and (outcome is None or r["outcome"] != "ok")]
            got: list[int] = []
            for page in range(1, 6):
                found = ws.analytics.turns_page("30d", group=group, outcome=outcome, page=page, per_page=10, now=NOW)
                assert found["total"] == len(want)
                got += [r["id"] for r in found["rows"]]
            assert got == want[:50], (group, outcome)


def test_fleets_latest_request_per_agent_is_the_newest_matching_row(ws: Workspace) -> None:
    """The latest request comes from each agent's last day in the daily sums, all agents in one
    statement: for every period, group and range edge it must be the newest row that matches."""
    import random

    rng = random.Random(9)
    names = [f"a{i}" for i in range(7)]
    rows = [dict(at=NOW - rng.random() * 30 * D, session="s", agent=rng.choice(names),
                 provider=rng.choice(("claude-api", "openai", "custom-x")), model=rng.choice(("m1", "m2")),
                 input_tokens=1, output_tokens=0, cache_read_tokens=0, cache_write_tokens=0, reasoning_tokens=0,
                 cost_usd=0.0, api_cost_usd=None, latency_s=0.1, outcome="ok", streamed=False,
                 usage_state="reported") for _ in range(300)]
    # a6's last day holds rows on both sides of a custom range's end (the edge fallback)
    end = datetime(2026, 6, 10, 12, 0, tzinfo=UTC).timestamp()
    rows += [{**rows[0], "agent": "a6", "at": end - 60, "provider": "openai"},
             {**rows[0], "agent": "a6", "at": end + 60, "provider": "claude-api"}]
    ws.store.insert_usage(rows)
    every = ws.analytics.turns("all")
    for period in ("7d", "30d", "2026-05-25T00:00..2026-06-10T12:00", "2026-06-01..2026-06-10"):
        w = ws.analytics.window(period, now=NOW)
        for group, members in ((None, None), ("claude", ("claude-api",)), ("custom", ("custom-x",))):
            got = {r["agent"]: (r["last_at"], r["provider"], r["model"])
                   for r in ws.analytics.fleet(period, group=group, now=NOW)}
            mine = [r for r in every if (w.start is None or r["at"] >= w.start)
                    and (w.end is None or r["at"] < w.end) and (members is None or r["provider"] in members)]
            want = {}
            for r in mine:  # oldest first: the last one written per agent is its newest
                want[r["agent"]] = (r["at"], r["provider"], r["model"])
            assert got == want, (period, group)
    (one,) = ws.analytics.fleet("30d", agent="a6", now=NOW)
    newest = max((r for r in every if r["agent"] == "a6"), key=lambda r: r["at"])
    assert (one["last_at"], one["provider"]) == (newest["at"], newest["provider"])


def test_charts_in_hourly_buckets_equal_the_rows_bucketed_by_hand(ws: Workspace) -> None:
    """A week's chart (3-hour buckets) and a few days' (hourly) read whole hours from the hourly
    sums and the partial hours at the edges from the rows: each bucket, per agent and in total,
    must equal the rows that fall in it, also after rows are added."""
    import random

    rng = random.Random(21)

    def rows(n: int) -> list[dict[str, Any]]:
        return [dict(at=NOW - rng.random() * 9 * D, session="s", agent=rng.choice(("a", "b", "c")),
                     provider=rng.choice(("openai", "claude-api", "custom-x")), model="m",
                     input_tokens=rng.randint(0, 999), output_tokens=rng.randint(0, 99), cache_read_tokens=0,
                     cache_write_tokens=rng.randint(0, 9), reasoning_tokens=0, cost_usd=rng.choice((None, 0.25, 0.5)),
                     api_cost_usd=None, latency_s=0.1, outcome=rng.choice(("ok", "ok", "RateLimitError")),
                     streamed=False, usage_state=rng.choice(("reported", "unknown"))) for _ in range(n)]

    def check() -> None:
        every = ws.analytics.turns("all")
        for period, group in (("7d", None), ("7d", "claude"), ("2026-06-11T10:30..2026-06-14T07:15", None)):
            s = ws.analytics.series(period, group=group, now=NOW)
            assert s["width"] in (3600.0, 10800.0), period
            members = {"claude": ("claude-api",)}.get(group or "")
            mine = [r for r in every if s["start"] <= r["at"] < (s["end"] if ".." in period else NOW + 1)
                    and (members is None or r["provider"] in members)]
            at = {b: i for i, b in enumerate(s["buckets"])}
            spend: dict[str, list[float]] = {}
            tokens = [0] * len(s["buckets"])
            unknown = [0] * len(s["buckets"])
            for r in mine:
                i = at[r["at"] // s["width"] * s["width"]]
                spend.setdefault(r["agent"], [0.0] * len(s["buckets"]))[i] += r["cost_usd"] or 0.0
                tokens[i] += r["input_tokens"] + r["cache_write_tokens"]
                unknown[i] += r["outcome"] == "ok" and r["usage_state"] == "unknown"
            assert s["spend"].keys() == spend.keys(), period
            for agent, values in spend.items():
                assert s["spend"][agent] == pytest.approx(values), (period, agent)
            assert (s["tokens"]["input"], s["usage_unknown"]) == (tokens, unknown), (period, group)

    ws.store.insert_usage(rows(400))
    check()
    ws.store.insert_usage(rows(100))  # after the sums were made: they catch up
    check()
