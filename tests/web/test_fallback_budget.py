"""Fallbacks and budgets in the page: which route answered (in the chat and the HUD, and in the
Analytics panel's Turns and Reliability tabs and raw export), the chain and budget set from the
agent form, and the 80% warning in the sidebar and the HUD."""

from __future__ import annotations

import csv
import html
import io
import re

import pytest

from web.conftest import Browser
from web.test_chat import point, turn
from workspace.loopback import Server, serving


async def _pal_with_a_fallback(web: Browser, oa: Server, an: Server) -> None:
    """The agent ``pal`` on openai (served by ``oa``), falling back to claude-api (``an``)."""
    point(web, "openai", oa)
    point(web, "claude-api", an)
    made = await web.post("/agents", {"name": "pal", "route": "openai|gpt-4.1", "effort": "low",
                                      "fallback": "claude-api/claude-haiku-4-5", "budget_usd": ""})
    assert made.status_code == 303, made.text


async def test_a_reply_a_fallback_gave_says_so_in_the_chat_and_the_hud(web: Browser) -> None:
    with serving(Server("oa", status=429, error_code="rate_limit_exceeded"), Server("an")) as (oa, an):
        await _pal_with_a_fallback(web, oa, an)
        streamed = await turn(web, "pal", "hello")
        name, done = streamed[-1]
        assert name == "done"
        notice = done["message"]["fallback"]
        assert notice == "answered by claude-api/claude-haiku-4-5 (fallback; openai/gpt-4.1: RateLimitError)"
        assert done["hud"]["last_fallback"] == notice
        assert done["hud"]["fallback"] == {"routes": ["claude-api/claude-haiku-4-5"], "inherited": False}
        assert done["hud"]["provider"] == "openai"  # the agent's own route did not change
        page = (await web.get("/agents/pal")).text
        assert page.count(html.escape(notice)) == 2  # under the reply, and in the HUD
        assert 'data-hud="fallback">claude-api/claude-haiku-4-5' in page
        # the next turn tries the primary again; it answers, and the HUD's notice goes
        oa.status = 200
        web.ws.health.reset("openai")
        again = await turn(web, "pal", "and now?")
        assert again[-1][1]["message"]["fallback"] is None and again[-1][1]["hud"]["last_fallback"] is None
        assert again[-1][1]["message"]["provider"] == "openai"


async def test_the_analytics_turns_and_reliability_tabs_show_a_turn_a_fallback_answered(web: Browser) -> None:
    with serving(Server("oa", status=429, error_code="rate_limit_exceeded"), Server("an")) as (oa, an):
        await _pal_with_a_fallback(web, oa, an)
        assert (await turn(web, "pal", "hello"))[-1][0] == "done"
    turns = await web.api("/api/analytics/turns?period=1h")
    answered, failed = turns["rows"]  # newest first
    assert (answered["provider"], answered["outcome"], answered["attempt"]) == ("claude-api", "ok", 1)
    assert answered["answered_by_fallback"] is True and answered["fallback_from"] == "openai/gpt-4.1"
    assert (failed["provider"], failed["outcome"], failed["attempt"]) == ("openai", "RateLimitError", 0)
    assert failed["fell_back_to"] == "claude-api/claude-haiku-4-5" and failed["answered_by_fallback"] is False
    assert [(a["attempt"], a["outcome"]) for a in failed["then"]] == [(1, "ok")]
    assert answered["turn"] == failed["turn"] is not None
    only = await web.api("/api/analytics/turns?period=1h&outcome=fallback")
    assert only["total"] == 1 and [r["id"] for r in only["rows"]] == [answered["id"]]
    assert (await web.api("/api/analytics/overview?period=1h"))["kpis"]["fallback_turns"] == 1

    page = (await web.get("/analytics/turns?period=1h")).text
    rows = dict(re.findall(r'<tr data-turn="(\d+)"(.*?)</tr>', page, re.S))
    shown = rows[str(answered["id"])]
    assert 'data-attempt="1"' in shown and 'class="badge fallback" data-fallback-from="openai/gpt-4.1"' in shown
    assert "for openai/gpt-4.1" in shown
    assert 'data-fell-back="claude-api/claude-haiku-4-5">→ fell back to claude-api/claude-haiku-4-5' in rows[
        str(failed["id"])]
    assert "badge fallback" not in rows[str(failed["id"])]

    reliability = await web.api("/api/analytics/reliability?period=1h")
    assert reliability["fallbacks"] == {"turns": 1, "routes": [
        {"from": "openai/gpt-4.1", "to": "claude-api/claude-haiku-4-5", "turns": 1}]}
    by = {r["provider"]: (r["errors"]["rate_limited"], r["fallback_for"], r["fallback_answered"])
          for r in reliability["providers"]}
    assert by == {"openai": (1, 1, 0), "claude-api": (0, 0, 1)}
    tab = (await web.get("/analytics/reliability?period=1h")).text
    assert 'data-fallback-turns="1"' in tab
    assert 'data-fallback-route="openai/gpt-4.1|claude-api/claude-haiku-4-5"' in tab
    assert re.search(r'data-provider-row="openai">.*?data-fallback-for="1"', tab, re.S)

    exported = await web.get("/analytics/export/turns.csv?period=1h")
    out = list(csv.DictReader(io.StringIO(exported.text)))
    assert [(r["provider"], r["attempt"], r["fallback_from"], r["turn"]) for r in out] == [
        ("openai", "0", "", str(failed["turn"])), ("claude-api", "1", "openai/gpt-4.1", str(failed["turn"]))]


async def test_the_agent_form_sets_and_clears_fallbacks_and_a_budget(web: Browser) -> None:
    web.ws.set_default_fallback("mistral/mistral-large-2512")
    made = await web.post("/agents", {"name": "pal", "route": "openai|gpt-4.1", "fallback_inherit": "1",
                                      "fallback": "", "budget_usd": "12.5", "budget_period": "day"})
    assert made.status_code == 303, made.text
    pal = web.ws.agent("pal")
    assert pal.fallback is None and [str(r) for r in pal.fallback_chain] == ["mistral/mistral-large-2512"]
    assert pal.budget is not None and (pal.budget.usd, pal.budget.period) == (12.5, "day")
    form = (await web.get("/agents/pal/configure")).text
    assert 'id="fallback-inherit" checked' in form and 'value="12.5"' in form and 'value="day" selected' in form
    assert "mistral/mistral-large-2512" in form  # the workspace chain it inherits, named
    own = await web.post("/agents/pal/configure", {"fallback": "claude-api/claude-haiku-4-5, openai/o3",
                                                   "budget_usd": "", "budget_period": "month"})
    assert own.status_code == 303
    assert [str(r) for r in pal.fallback_chain] == ["claude-api/claude-haiku-4-5", "openai/o3"]
    assert pal.budget is None
    shown = await web.api("/api/agents/pal")
    assert shown["fallback"] == {"routes": ["claude-api/claude-haiku-4-5", "openai/o3"], "inherited": False}
    none = await web.post("/agents/pal/configure", {"fallback": "", "budget_usd": ""})
    assert none.status_code == 303 and pal.fallback == () and pal.fallback_chain == ()
    # a JSON client that leaves the fields out changes neither
    pal.set_budget(3, "month")
    await web.post("/agents/pal/configure", {"effort": "low"}, json_answer=True)
    assert pal.budget is not None and pal.fallback == ()


@pytest.mark.parametrize(("fields", "named"), [
    ({"fallback": "openai/no-such-model"}, "no-such-model"),
    ({"fallback": "gpt-4.1"}, "gpt-4.1"),
    ({"budget_usd": "lots"}, "lots"),
    ({"budget_usd": "-5"}, "-5"),
    ({"budget_usd": "5", "budget_period": "week"}, "week"),
])
async def test_a_bad_fallback_or_budget_is_refused_by_name_and_changes_nothing(
        web: Browser, fields: dict[str, str], named: str) -> None:
    refused = await web.post("/agents", {"name": "pal", "route": "openai|gpt-4.1", **fields})
    assert refused.status_code == 400 and 'id="form-error"' in refused.text
    assert html.escape(named) in refused.text.split('id="form-error"')[1].split("</p>")[0]
    assert web.ws.agents() == []  # not created half-way
    kept = web.ws.create_agent("kept", provider="openai", model="gpt-4.1", effort="low")
    kept.set_budget(7, "day")
    again = await web.post("/agents/kept/configure", {"effort": "high", "route": "openai|gpt-4.1", **fields})
    assert again.status_code == 400
    assert kept.effort == "low" and kept.fallback is None and kept.budget is not None and kept.budget.usd == 7


async def test_a_budget_at_80_percent_warns_in_the_sidebar_and_the_hud(web: Browser) -> None:
    with serving(Server("oa")) as (oa,):
        point(web, "openai", oa)
        pal = web.ws.create_agent("pal", provider="openai", model="gpt-4.1")
        quiet = web.ws.create_agent("quiet", provider="openai", model="gpt-4.1")
        await turn(web, "pal", "hello")
        spent = web.ws.budget_state(pal)
        assert spent is None
        cost = web.ws.store.spend(0.0, pal.id)[0][1]
        assert cost > 0
        pal.set_budget(cost / 0.9, "day")  # 90% spent
        quiet.set_budget(cost / 0.9, "day")  # nothing spent
        page = (await web.get("/agents/pal")).text
        sidebar = page.split('id="agent-list"')[1].split("</ul>")[0]
        assert 'data-budget-for="pal"' in sidebar and 'data-budget-for="quiet"' not in sidebar
        hud = page.split('id="hud"')[1].split('id="switch-form"')[0]
        warning = hud.split('data-hud="budget"')[1].split("</span>")[0]
        assert "hidden" not in warning.split(">")[0] and "90%" in warning
        calm = (await web.get("/agents/quiet")).text.split('id="hud"')[1].split('id="switch-form"')[0]
        assert 'class="budget-warning hidden"' in calm
