"""A fleet at once: 100 agents with fallbacks while their provider flips between 429 and ok (no
turn lost or duplicated, the ledger matches the requests made), and budgets reached mid-fleet
(exactly the turns one-at-a-time sending would refuse are refused, before anything is sent)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ironspire.catalog.models import ModelSpec
from ironspire.errors import BudgetExceeded, ConfigurationError
from ironspire.transport import RetryPolicy, Transport
from ironspire.workspace import Workspace
from workspace.loopback import Server, serving


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-openai-key-000")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-key-000")


@pytest.fixture
async def fleet_ws(memory_keyring: Any, tmp_path: Path) -> AsyncIterator[Workspace]:
    from ironspire.health import HealthMonitor

    ws = Workspace.open(tmp_path / "fleet", health=HealthMonitor,
                        transport=Transport(RetryPolicy(attempts=1, base_delay=0.01, max_delay=0.05)))
    yield ws
    await ws.aclose()


def point(ws: Workspace, oa: Server, an: Server) -> None:
    ws.set_provider_setting("openai", "base_url", oa.url + "/v1")
    ws.set_provider_setting("claude-api", "base_url", an.url)


def turn_cost(ws: Workspace) -> float:
    """What one loopback OpenAI turn costs (60 input, 40 cached, 20 output tokens on gpt-4.1)."""
    price = ws.registry.get("openai", "gpt-4.1").price
    return (60 * price.input + 40 * price.cache_read + 20 * price.output) / 1e6


def answered_texts(server: Server, kind: str) -> list[str]:
    """The last user text of every request the server answered 200 to."""
    ok = {i for i, status in server.answered if status == 200}
    out = []
    for i, request in enumerate(server.requests):
        if i not in ok:
            continue
        messages = request["body"]["messages"]
        last = messages[-1]["content"]
        out.append(last if isinstance(last, str) else "".join(c.get("text", "") for c in last))
    return out


async def test_100_agents_while_the_provider_flips_between_429_and_ok(fleet_ws: Workspace) -> None:
    ws = fleet_ws
    # requests 0-9 refused, 10-19 answered, 20-29 refused...: a provider flapping under load
    flipping = Server("oa", statuses=lambda i: 429 if (i // 10) % 2 == 0 else 200, retry_after="0",
                      error_code="rate_limit_exceeded")
    with serving(flipping, Server("an")) as (oa, an):
        point(ws, oa, an)
        ws.set_default("openai", "gpt-4.1")
        ws.set_default_fallback("claude-api/claude-sonnet-5-5")
        agents = [ws.create_agent(f"agent-{n:03}") for n in range(100)]

        async def converse(n: int) -> None:
            for t in range(2):
                await agents[n].send(f"agent {n} turn {t}")

        await asyncio.gather(*(converse(n) for n in range(100)))

    sent = [f"agent {n} turn {t}" for n in range(100) for t in range(2)]
    # every turn answered exactly once, by one provider or the other
    answered = Counter(answered_texts(oa, "openai") + answered_texts(an, "anthropic"))
    assert sorted(answered) == sorted(sent) and set(answered.values()) == {1}
    for n, agent in enumerate(agents):
        history = agent.history
        assert [m.text for m in history if m.role == "user"] == [f"agent {n} turn 0", f"agent {n} turn 1"]
        assert all(m.text.endswith(f"last: agent {n} turn {t}") for t, m in enumerate(history[1::2]))
    rows = ws.analytics.turns()
    refused = sum(1 for _, status in oa.answered if status == 429)
    assert refused > 0 and len(oa.requests) - refused > 0  # both states were seen
    assert len(rows) == len(oa.requests) + len(an.requests)  # one ledger row per request, none lost
    outcomes = Counter((r["provider"], r["outcome"]) for r in rows)
    assert outcomes == Counter({("openai", "RateLimitError"): refused, ("openai", "ok"): len(oa.requests) - refused,
                                ("claude-api", "ok"): len(an.requests)})
    # per agent, the ledger holds exactly the requests its replies record
    per_agent = Counter(r["agent"] for r in rows)
    for agent in agents:
        recorded = sum(len(m.meta.get("fallback", {}).get("attempts", [None]))
                       - sum(1 for a in m.meta.get("fallback", {}).get("attempts", []) if a["outcome"] == "skipped")
                       for m in agent.history if m.role == "assistant")
        assert per_agent[agent.name] == recorded


async def test_a_workspace_budget_reached_mid_fleet_refuses_exactly_the_turns_past_it(fleet_ws: Workspace) -> None:
    ws = fleet_ws
    cost = turn_cost(ws)
    with serving(Server("oa"), Server("an")) as (oa, an):
        point(ws, oa, an)
        ws.set_default("openai", "gpt-4.1")
        ws.set_budget(cost * 5.5, "day")  # sent one at a time: turns 1-6 go (the 6th crosses 100%), the rest not
        agents = [ws.create_agent(f"a{n}") for n in range(20)]
        results = await asyncio.gather(*(a.send(f"hello from {a.name}") for a in agents), return_exceptions=True)
    refused = [r for r in results if isinstance(r, BudgetExceeded)]
    done = [r for r in results if not isinstance(r, BaseException)]
    assert (len(done), len(refused)) == (6, 14) and len(oa.requests) == 6
    error = refused[0]
    assert error.scope == "workspace" and error.spent == pytest.approx(cost * 6) and error.limit == cost * 5.5
    assert "daily budget" in str(error) and "resets at" in str(error) and "default budget" in str(error)
    assert error.remedy is not None and error.remedy.action == "set_budget"
    assert len(ws.analytics.turns()) == 6  # refused before sending: no ledger row, no unanswered message
    assert sum(len(a.transcript()) for a in agents) == 12


async def test_an_agent_budget_unknown_cost_and_the_80_percent_warning(fleet_ws: Workspace) -> None:
    from ironspire import views

    ws = fleet_ws
    cost = turn_cost(ws)
    ws.registry.register(ModelSpec(provider="openai", id="unpriced", display_name="u", context_window=100_000,
                                   max_output_tokens=1000, source="configured"))
    with serving(Server("oa"), Server("an")) as (oa, an):
        point(ws, oa, an)
        agent = ws.create_agent("spender", provider="openai", model="gpt-4.1")
        other = ws.create_agent("other", provider="openai", model="gpt-4.1")
        agent.set_budget(cost * 1.2, "month")
        await agent.send("one")
        view = views.agent(ws, "spender")
        [own] = view.budgets
        assert (own.scope, own.level, own.spent) == ("agent", "warning", pytest.approx(cost))
        assert view.budget_warning is not None and "83%" in view.budget_warning
        await agent.send("two")  # under 100% when it started: sent
        with pytest.raises(BudgetExceeded, match="spender") as raised:
            await agent.send("three")
        assert raised.value.scope == "agent" and raised.value.period == "month"
        assert views.agent(ws, "spender").budgets[0].level == "exceeded"
        assert (await other.send("not under that budget")).text  # other agents are not held back
        # a turn of unknown cost is counted apart and flagged, never as $0 of spend
        agent.set_budget(cost * 100, "day")
        agent.switch("openai", "unpriced")
        await agent.send("four")
        state = ws.budget_state(agent)
        assert state is not None and state.unknown_turns == 1 and state.spent == pytest.approx(cost * 2)
        assert views.agent(ws, "spender").to_json()["budgets"][0]["unknown_turns"] == 1
    assert len(oa.requests) == 4


def test_cli_sets_fallbacks_and_budgets_and_ask_says_which_route_answered(
        memory_keyring: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ironspire.cli.app import app

    home = tmp_path / "cli"
    monkeypatch.setenv("IRONSPIRE_HOME", str(home))
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(app, list(args), catch_exceptions=True)

    with serving(Server("oa", status=503), Server("an")) as (oa, an):
        for pid, url in (("openai", oa.url + "/v1"), ("claude-api", an.url)):
            assert run("providers", "set", pid, "base_url", url).exit_code == 0
        assert run("default", "set", "openai", "gpt-4.1").exit_code == 0
        assert run("agents", "create", "w").exit_code == 0
        result = run("agents", "set", "w", "--fallback", "claude-api/claude-sonnet-5-5", "--budget", "0.0001",
                     "--period", "day")
        assert result.exit_code == 0, result.output
        said = " ".join(result.output.split())
        assert "then claude-api/claude-sonnet-5-5" in said and "budget $0.0001 per day" in said
        shown = run("agents", "show", "w", "--json")
        data = __import__("json").loads(shown.stdout)
        assert data["fallback"] == {"routes": ["claude-api/claude-sonnet-5-5"], "inherited": False}
        assert data["budgets"][0]["usd"] == 0.0001
        asked = run("ask", "w", "hello", "--no-check")
        assert asked.exit_code == 0, asked.output
        assert "an: 1 messages, last: hello" in asked.stdout
        assert "note: answered by claude-api/claude-sonnet-5-5 (fallback; openai/gpt-4.1: ProviderUnavailable)" \
            in asked.stderr
        told = " ".join(run("history", "w").output.split())
        assert "assistant (claude-api/claude-sonnet-5-5), answered by claude-api/claude-sonnet-5-5 (fallback; " \
            "openai/gpt-4.1: ProviderUnavailable)" in told
        # the Anthropic turn costs more than the budget: the next ask is refused, naming it
        refused = run("ask", "w", "again", "--no-check")
        assert isinstance(refused.exception, BudgetExceeded) and "agent 'w'" in str(refused.exception)
        spent = __import__("json").loads(run("agents", "show", "w", "--json").stdout)["budgets"][0]["spent"]
        assert run("agents", "set", "w", "--budget", f"{spent / 0.9:.8f}", "--period", "day").exit_code == 0
        warned = run("ask", "w", "at ninety percent", "--no-check")
        assert warned.exit_code == 0 and "warning: agent w budget:" in warned.stderr and "(90%)" in warned.stderr
        assert run("default", "fallback", "claude-api/claude-sonnet-5-5").exit_code == 0
        shown = run("default", "fallback", "--on", "5xx,quota", "--cooldown", "5", "--json")
        assert __import__("json").loads(shown.stdout) == {
            "routes": ["claude-api/claude-sonnet-5-5"], "on": ["5xx", "quota"], "cooldown": 5.0}
        assert isinstance(run("default", "fallback", "--on", "sometimes").exception, ConfigurationError)
        assert run("agents", "set", "w", "--fallback", "default", "--budget", "none").exit_code == 0
        assert __import__("json").loads(run("agents", "show", "w", "--json").stdout)["fallback"]["inherited"] is True
        budget = run("default", "budget", "100", "--period", "month")
        assert budget.exit_code == 0 and "per month" in " ".join(budget.output.split())
