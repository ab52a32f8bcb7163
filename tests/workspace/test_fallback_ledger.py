"""The ledger links the requests of one turn and says which were made to a fallback route, on
both engines: turns through the real adapters to loopback servers that fail, then what the
Analytics panel's Turns and Reliability figures and the raw CSV say about them."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from ironspire.analytics import EXPORT_FIELDS
from ironspire.errors import ProviderUnavailable
from ironspire.workspace import Workspace
from workspace.conftest import FakeStatus
from workspace.loopback import Server, serving
from workspace.test_fallback import point, switchable

PRIMARY, FIRST, SECOND = "openai/gpt-4.1", "claude-api/claude-sonnet-5-5", "google/gemini-3.8-flash"


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-openai-key-000")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-key-000")
    monkeypatch.setenv("GEMINI_API_KEY", "AIza-test-gemini-key-000")


def _rows(ws: Workspace) -> list[tuple[Any, ...]]:
    return [(r["turn"], r["attempt"], f"{r['provider']}/{r['model']}", r["outcome"], r["fallback_from"])
            for r in ws.analytics.turns()]


def _user_ids(ws: Workspace, agent_id: int) -> list[int]:
    """The ids of the agent's stored user messages, oldest first (answered or not)."""
    from ironspire.messages import Message

    return [i for i, body, _, _ in ws.store.transcript(agent_id) if Message.from_json(body).role == "user"]


async def test_a_turns_requests_share_its_id_and_say_which_route_of_its_chain_they_were(ws: Workspace) -> None:
    oa_state, oa_status = switchable(503)
    an_state, an_status = switchable()
    with serving(Server("oa", statuses=oa_status), Server("an", statuses=an_status), Server("gm")) as (oa, an, gm):
        point(ws, oa, an, gm)
        agent = ws.create_agent("pal", provider="openai", model="gpt-4.1")
        agent.set_fallback(f"{FIRST},{SECOND}")

        # 1. the own route fails, the first fallback answers
        reply = await agent.send("one")
        assert reply.meta["fallback"]["answered"] == FIRST
        # 2. the own route answers again
        oa_state["status"] = 200
        await agent.send("two")
        # 3. the own route and the first fallback fail, the second answers
        oa_state["status"], an_state["status"] = 503, 429
        assert (await agent.send("three")).provider == "google"
        # 4. every route fails: the turn fails, its requests are still one turn
        gm.status = 500
        with pytest.raises(ProviderUnavailable):
            await agent.send("four")
        # 5. the own route is cooling down: skipped without a request, the fallback stands in for it
        an_state["status"], gm.status = 200, 200
        ws.health.states["openai"] = FakeStatus("unreachable")  # type: ignore[attr-defined]
        assert (await agent.send("five")).provider == "claude-api"

    t1, t2, t3, t4, t5 = _user_ids(ws, agent.id)
    assert _rows(ws) == [
        (t1, 0, PRIMARY, "ProviderUnavailable", None), (t1, 1, FIRST, "ok", PRIMARY),
        (t2, 0, PRIMARY, "ok", None),
        (t3, 0, PRIMARY, "ProviderUnavailable", None), (t3, 1, FIRST, "RateLimitError", PRIMARY),
        (t3, 2, SECOND, "ok", PRIMARY),
        (t4, 0, PRIMARY, "ProviderUnavailable", None), (t4, 1, FIRST, "RateLimitError", PRIMARY),
        (t4, 2, SECOND, "ProviderUnavailable", PRIMARY),
        (t5, 1, FIRST, "ok", PRIMARY),  # place 1 in the chain, though the turn's only request
    ]
    assert [e.status for e in agent.transcript()].count("unanswered") == 1

    # the Turns tab, newest first: what answered on a fallback, and what each failure led to
    page = ws.analytics.turns_page(per_page=50)
    marks = [(r["turn"], r["attempt"], r["outcome"], r["answered_by_fallback"], r["fell_back_to"],
              [(a["attempt"], a["outcome"]) for a in r["then"]]) for r in reversed(page["rows"])]
    assert marks == [
        (t1, 0, "ProviderUnavailable", False, FIRST, [(1, "ok")]), (t1, 1, "ok", True, None, []),
        (t2, 0, "ok", False, None, []),
        (t3, 0, "ProviderUnavailable", False, SECOND, [(1, "RateLimitError"), (2, "ok")]),
        (t3, 1, "RateLimitError", False, SECOND, [(2, "ok")]),
        (t3, 2, "ok", True, None, []),
        (t4, 0, "ProviderUnavailable", False, None, [(1, "RateLimitError"), (2, "ProviderUnavailable")]),
        (t4, 1, "RateLimitError", False, None, [(2, "ProviderUnavailable")]),
        (t4, 2, "ProviderUnavailable", False, None, []),
        (t5, 1, "ok", True, None, []),
    ]

    # the Reliability tab: three turns answered by a fallback, all meant for openai
    rel = ws.analytics.reliability()
    assert rel["fallbacks"] == {"turns": 3, "routes": [{"from": PRIMARY, "to": FIRST, "turns": 2},
                                                       {"from": PRIMARY, "to": SECOND, "turns": 1}]}
    by = {r["provider"]: (r["requests"], r["fallback_for"], r["fallback_answered"]) for r in rel["providers"]}
    assert by == {"openai": (4, 3, 0), "claude-api": (4, 0, 2), "google": (2, 0, 1)}
    # a provider filter keeps the turns meant for it or answered on it
    only = ws.analytics.reliability(provider="google")
    assert only["fallbacks"] == {"turns": 1, "routes": [{"from": PRIMARY, "to": SECOND, "turns": 1}]}
    assert [(r["provider"], r["fallback_for"], r["fallback_answered"]) for r in only["providers"]] == [
        ("google", 0, 1)]
    assert ws.analytics.reliability(provider="openai")["fallbacks"]["turns"] == 3
    assert ws.analytics.reliability(agent="nobody-else")["fallbacks"] == {"turns": 0, "routes": []}
    # the same turns are the KPI's count and the Turns tab's fallback outcome
    assert [ws.analytics.kpis(provider=p)["fallback_turns"] for p in (None, "openai", "google")] == [3, 3, 1]
    answered = ws.analytics.turns_page(outcome="fallback")
    assert answered["total"] == 3
    assert [(r["turn"], r["attempt"], r["provider"]) for r in answered["rows"]] == [
        (t5, 1, "claude-api"), (t3, 2, "google"), (t1, 1, "claude-api")]

    # the raw export carries the turn, the place and the route stood in for
    out = list(csv.DictReader(io.StringIO("".join(ws.analytics.iter_turns_csv(fields=EXPORT_FIELDS)))))
    assert list(out[0])[-3:] == ["turn", "attempt", "fallback_from"]
    assert [(r["turn"], r["attempt"], r["fallback_from"]) for r in out[:2]] == [
        (str(t1), "0", ""), (str(t1), "1", PRIMARY)]


async def test_a_streamed_turn_that_falls_back_is_linked_too(ws: Workspace) -> None:
    with serving(Server("oa", status=503), Server("an"), Server("gm")) as (oa, an, gm):
        point(ws, oa, an, gm)
        agent = ws.create_agent("pal", provider="openai", model="gpt-4.1")
        agent.set_fallback(FIRST)
        async for _ in agent.stream("hello"):
            pass
    (turn,) = _user_ids(ws, agent.id)
    assert _rows(ws) == [(turn, 0, PRIMARY, "ProviderUnavailable", None), (turn, 1, FIRST, "ok", PRIMARY)]
    assert [r["streamed"] for r in ws.analytics.turns()] == [True, True]


async def test_a_turn_without_fallbacks_is_its_own_route_and_rows_from_elsewhere_stay_unlinked(
        ws: Workspace) -> None:
    with serving(Server("oa")) as (oa,):
        point(ws, oa, oa, oa)
        agent = ws.create_agent("solo", provider="openai", model="gpt-4.1")
        await agent.send("hi")
    ws.store.insert_usage([{"agent": "solo", "at": 1_700_000_000.0, "session": "old", "provider": "openai",
                            "model": "gpt-4.1", "latency_s": 0.2, "outcome": "ok", "streamed": False}])
    (turn,) = _user_ids(ws, agent.id)
    assert _rows(ws) == [(None, None, PRIMARY, "ok", None), (turn, 0, PRIMARY, "ok", None)]
    page = ws.analytics.turns_page()
    assert [(r["answered_by_fallback"], r["then"]) for r in page["rows"]] == [(False, []), (False, [])]
    assert ws.analytics.reliability()["fallbacks"] == {"turns": 0, "routes": []}
    assert ws.analytics.kpis()["fallback_turns"] == 0
    assert ws.analytics.turns_page(outcome="fallback") == {"total": 0, "page": 1, "per_page": 50, "pages": 1,
                                                           "rows": []}
