"""Agents and chat through the app: create/configure with an effort level, streamed replies
(SSE), switching in place with the history kept, Stop, typed errors with their remedy, the
sidebar's warning and one-click reassign, and the Session HUD."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from ironspire.catalog.providers import CustomEndpoint
from web.conftest import Browser
from workspace.loopback import Server, serving


def events(body: str) -> list[tuple[str, Any]]:
    out = []
    for block in body.split("\n\n"):
        name = next((line[7:] for line in block.splitlines() if line.startswith("event: ")), None)
        data = next((line[6:] for line in block.splitlines() if line.startswith("data: ")), None)
        if name and data is not None:
            out.append((name, json.loads(data)))
    return out


async def turn(web: Browser, agent: str, text: str) -> list[tuple[str, Any]]:
    started = await web.post(f"/agents/{agent}/turns", {"message": text}, json_answer=True)
    assert started.status_code == 202, started.text
    stream = await web.get(started.json()["events"])
    assert stream.headers["content-type"].startswith("text/event-stream")
    return events(stream.text)


def point(web: Browser, pid: str, server: Server) -> None:
    web.ws.set_provider_setting(pid, "base_url", server.url + ("/v1" if pid in ("openai", "mistral") else ""))
    web.ws.credentials.set(pid, "api_key", f"{pid}-test-key-000000")


async def test_an_agent_is_created_and_configured_with_an_effort_level(web: Browser) -> None:
    made = await web.post("/agents", {"name": "planner", "system": "plan things", "effort": "low",
                                      "route": "openai|o3"})
    assert made.status_code == 303 and made.headers["location"] == "/agents/planner"
    planner = web.ws.agent("planner")
    assert (planner.effort, planner.own_provider, planner.own_model, planner.system) == ("low", "openai", "o3",
                                                                                       "plan things")
    form = (await web.get("/agents/planner/configure")).text
    assert 'value="low" checked' in form and 'value="openai|o3" checked' in form
    assert 'class="chip reasoning"' in form and "System default" in form
    hud = await web.api("/api/agents/planner/hud")  # o3 reasons: the level goes out with its turns
    assert (hud["effort_used"], hud["effort_text"]) == (True, "effort low")
    changed = await web.post("/agents/planner/configure", {"system": "", "effort": "medium", "route": "__default__"})
    assert changed.status_code == 303
    assert (planner.effort, planner.inherits, planner.system) == ("medium", True, None)
    assert (await web.api("/api/agents/planner"))["effort"] == "medium"


@pytest.mark.parametrize("form", [{"name": "x", "effort": "extreme"}, {"name": "x", "route": "openai|nope"},
                                  {"name": "", "effort": "low"}, {"name": "x", "route": "garbage"}])
async def test_bad_agent_forms_change_nothing(web: Browser, form: dict[str, str]) -> None:
    refused = await web.post("/agents", form)
    assert refused.status_code == 400 and 'id="form-error"' in refused.text
    assert web.ws.agents() == []
    if not form["name"]:
        return  # reconfiguring does not rename
    web.ws.create_agent("kept", effort="low")
    again = await web.post("/agents/kept/configure", {**form, "system": "changed"})
    assert again.status_code == 400
    kept = web.ws.agent("kept")
    assert (kept.effort, kept.system, kept.inherits) == ("low", None, True)


async def test_a_reply_streams_and_the_history_survives_a_switch(web: Browser) -> None:
    with serving(Server("oa"), Server("an")) as (oa, an):
        point(web, "openai", oa)
        point(web, "claude-api", an)
        web.ws.create_agent("pal", provider="openai", model="gpt-4.1")
        first = await turn(web, "pal", "hello there")
        texts = "".join(d["text"] for name, d in first if name == "text")
        assert texts == "oa: 1 messages, last: hello there"
        assert len([1 for name, _ in first if name == "text"]) > 1  # it arrived in pieces
        done = first[-1]
        assert done[0] == "done" and done[1]["message"]["provider"] == "openai"
        assert done[1]["hud"]["cost"]["billed_usd"] > 0
        switched = await web.post("/agents/pal/switch", {"route": "claude-api|claude-haiku-4-5"})
        assert switched.status_code == 303
        second = await turn(web, "pal", "and now?")
        assert "".join(d["text"] for n, d in second if n == "text") == "an: 3 messages, last: and now?"
        history = await web.api("/api/agents/pal/history")
        assert [(m["role"], m.get("provider")) for m in history] == [
            ("user", None), ("assistant", "openai"), ("user", None), ("assistant", "claude-api")]
        page = (await web.get("/agents/pal")).text
        assert "openai/gpt-4.1" in page and "claude-api/claude-haiku-4-5" in page
        assert 'data-hud="override">override' in page


async def test_stop_cancels_mid_stream_and_leaves_the_history_intact(web: Browser) -> None:
    with serving(Server("slow", hold_after=3)) as (slow,):
        point(web, "openai", slow)
        agent = web.ws.create_agent("pal", provider="openai", model="gpt-4.1")
        started = (await web.post("/agents/pal/turns", {"message": "tell me a long story"}, json_answer=True)).json()
        state = web.app.state.web.turns.get(started["id"])
        for _ in range(200):
            if sum(1 for name, _ in state.events if name == "text") >= 2:
                break
            await asyncio.sleep(0.02)
        busy = await web.post("/agents/pal/turns", {"message": "again"}, json_answer=True)
        assert busy.status_code == 400 and "still replying" in busy.json()["message"]
        stopped = await web.post(started["stop"], json_answer=True)
        assert stopped.status_code == 200
        slow.gate.set()
        replay = events((await web.get(started["events"])).text)
        assert [n for n, _ in replay][-1] == "stopped"
        assert any(n == "text" for n, _ in replay)
        assert agent.history == []
        everything = await web.api("/api/agents/pal/history?all=1")
        assert [(m["role"], m["status"]) for m in everything] == [("user", "unanswered")]


@pytest.mark.parametrize(("status", "error", "state", "action"), [
    (401, "AuthenticationError", "invalid_key", "set_key"),
    (429, "RateLimitError", "rate_limited", "retry"),
])
async def test_a_failed_turn_shows_its_error_and_remedy_and_updates_the_dot(
    web: Browser, status: int, error: str, state: str, action: str
) -> None:
    with serving(Server("bad", status=status)) as (bad,):
        point(web, "mistral", bad)
        web.ws.create_agent("pal", provider="mistral", model="mistral-large-2512")
        replay = await turn(web, "pal", "hi")
        name, data = replay[-1]
        assert name == "failed" and data["error"]["type"] == error
        assert data["error"]["remedy"]["action"] == action and data["error"]["button"] is not None
        if action == "retry":
            assert data["error"]["alternative"]["url"] == "/agents/pal/reassign"
        assert (await web.api("/api/agents/pal/history")) == []
        # live traffic moved the provider's dot (and the card the page shows)
        card = next(r for r in await web.api("/api/providers") if r["id"] == "mistral")
        assert card["health"]["state"] == state
        listener = web.app.state.web.feed.snapshot()["mistral"]
        assert listener["dot"] == ("red" if status == 401 else "yellow")


async def test_the_sidebar_warns_and_one_click_reassign_clears_it(web: Browser) -> None:
    with serving(Server("oa"), Server("m")) as (oa, m):
        point(web, "openai", oa)
        point(web, "mistral", m)
        web.ws.set_default("openai", "gpt-4.1")
        web.ws.health.observe("openai", None, 0.01)
        agent = web.ws.create_agent("pal", provider="mistral", model="mistral-large-2512")
        await turn(web, "pal", "first")
        await web.post("/settings/providers/mistral/disable")
        page = (await web.get("/agents/pal")).text
        assert 'data-warning-for="pal" data-alert="disabled"' in page and "mistral is disabled" in page
        assert 'data-reassign="pal">Reassign to openai' in page
        moved = await web.post("/agents/pal/reassign", {"route": "openai|gpt-4.1"})
        assert moved.status_code == 303
        page = (await web.get("/agents/pal")).text
        assert 'data-warning-for="pal"' not in page
        assert (agent.own_provider, agent.own_model) == ("openai", "gpt-4.1")
        assert len(agent.history) == 2  # kept
        oneclick = web.ws.create_agent("other", provider="mistral", model="mistral-large-2512")
        assert (await web.post("/agents/other/reassign")).status_code == 303  # no route given: a healthy one
        assert oneclick.own_provider == "openai"


async def test_the_context_bar_turns_red_at_70_and_pulses_at_90_percent(web: Browser) -> None:
    with serving(Server("box")) as (box,):
        web.ws.add_custom_endpoint(CustomEndpoint("tiny", box.url + "/v1", "t1", context_window=1000))
        web.ws.create_agent("pal", provider="custom-tiny", model="t1")
        hud = await web.api("/api/agents/pal/hud")
        # a custom model is not known to reason: the agent's effort level does not go out to it
        assert (hud["effort_used"], hud["effort_text"]) == (False, "effort high · unused")
        assert "does not reason" in hud["effort_title"]
        assert 'class="badge effort unused"' in (await web.get("/agents/pal")).text
        assert (hud["context"]["window"], hud["context"]["level"]) == (1000, "ok")
        await turn(web, "pal", "x" * 1500)
        hud = await web.api("/api/agents/pal/hud")
        assert 0.7 <= hud["context"]["share"] < 0.9 and hud["context"]["level"] == "warn"
        assert 'class="ctx-warn"' in (await web.get("/agents/pal")).text
        await turn(web, "pal", "y" * 300)
        hud = await web.api("/api/agents/pal/hud")
        assert hud["context"]["share"] >= 0.9 and hud["context"]["level"] == "alarm"
        assert 'class="ctx-alarm"' in (await web.get("/agents/pal")).text
        assert hud["cost"] == {"billed_usd": 0.0, "api_equivalent_usd": 0.0, "differs": False, "billed_text": "$0",
                               "api_text": "$0"}


@pytest.fixture
def fake_claude(tmp_path: Path) -> str:
    """The stand-in Claude CLI replaying a recorded stream-json turn (tests/fixtures/claude)."""
    pytest.importorskip("claude_agent_sdk")
    fixture = Path(__file__).resolve().parents[1] / "fixtures" / "claude" / "fake_claude.py"
    wrapper = tmp_path / "bin" / "claude"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{fixture}" "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


async def test_the_hud_shows_billed_and_api_equivalent_cost_apart(web: Browser, fake_claude: str) -> None:
    """A Claude subscription bills nothing per token; the HUD says what the same turn would have
    cost on the API (the CLI's own report: the recorded turn's total_cost_usd)."""
    web.ws.set_provider_setting("claude-sdk", "cli_path", fake_claude)
    web.ws.create_agent("sub", provider="claude-sdk", model="claude-haiku-4-5")
    done = (await turn(web, "sub", "What is 2+2?"))[-1]
    assert done[0] == "done", done
    cost = done[1]["hud"]["cost"]
    assert cost["billed_usd"] == 0.0 and cost["differs"] is True
    assert cost["api_equivalent_usd"] == pytest.approx(0.103066, abs=1e-6)
    page = (await web.get("/agents/sub")).text
    assert "API-equivalent $0.1" in page and "0</strong> billed" in page


async def test_tool_calls_and_their_results_are_rendered(web: Browser) -> None:
    from ironspire.messages import Message, Text, ToolResult
    from ironspire.protocols.base import Tool

    weather = Tool("get_weather", "Current weather in a city.",
                   {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
    with serving(Server("oa", mode="tools")) as (oa,):
        point(web, "openai", oa)
        agent = web.ws.create_agent("pal", provider="openai", model="gpt-4.1")
        asked = await agent.send("Weather in Oslo?", tools=[weather])
        (call,) = asked.tool_calls
        await agent.send(Message.tool(ToolResult(call.id, call.name, (Text("sunny, 21 C"),))), tools=[weather])
    page = (await web.get("/agents/pal")).text
    assert 'Tool call <code>get_weather</code> <code class="args">{&#34;city&#34;: &#34;Oslo&#34;}</code>' in page
    assert "Result of <code>get_weather</code>: <span>sunny, 21 C</span>" in page


async def test_the_model_picker_includes_discovered_models_after_a_refresh(web: Browser, realdata: Path) -> None:
    """Ollama's own documented answers (recorded in realdata) list what the local server has."""
    import yaml

    from support.ollama_fake import serving as ollama_serving

    openapi = yaml.safe_load((realdata / "ollama/ollama__docs__openapi.yaml").read_text(encoding="utf-8"))

    def example(path: str, method: str) -> Any:
        return openapi["paths"][path][method]["responses"]["200"]["content"]["application/json"]["example"]

    routes = {("GET", "/api/tags"): (200, example("/api/tags", "get")),
              ("POST", "/api/show:gemma4"): (200, example("/api/show", "post"))}
    with ollama_serving(routes) as server:
        web.ws.set_provider_setting("ollama", "base_url", server.url)
        assert 'value="ollama|gemma4"' not in (await web.get("/agents/new")).text
        refreshed = await web.post("/agents/models/refresh", {"return_to": "/agents/new"})
        assert refreshed.status_code == 303 and refreshed.headers["location"] == "/agents/new"
        picker = (await web.get("/agents/new")).text
    assert 'value="ollama|gemma4"' in picker and 'class="chip discovered"' in picker
    assert any(m["id"] == "gemma4" for m in await web.api("/api/models?provider=ollama"))


async def test_an_effort_level_chosen_in_the_page_reaches_the_claude_cli(web: Browser, fake_claude: str) -> None:
    from ironspire import paths

    web.ws.set_provider_setting("claude-sdk", "cli_path", fake_claude)
    made = await web.post("/agents", {"name": "sub", "effort": "low", "route": "claude-sdk|claude-haiku-4-5"})
    assert made.status_code == 303
    assert (await turn(web, "sub", "What is 2+2?"))[-1][0] == "done"
    log = paths.home() / "claude-sdk" / "fake-claude-calls.jsonl"
    (call,) = [json.loads(line) for line in log.read_text().splitlines()]
    assert call["argv"][call["argv"].index("--effort") + 1] == "low"
