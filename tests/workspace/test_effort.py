"""The per-agent effort level: stored with the agent, exported, set from the CLI and the Python
API, and sent as each provider's own reasoning control only where the model reasons."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ironspire.cli.app import app
from ironspire.errors import ConfigurationError
from ironspire.workspace import Workspace
from workspace.loopback import Server, serving


def test_effort_defaults_to_high_and_is_stored(open_ws: Any, tmp_path: Path) -> None:
    ws: Workspace = open_ws()
    try:
        assert ws.create_agent("deep").effort == "high"
        quick = ws.create_agent("quick", effort="Low")
        assert quick.effort == "low"
        ws.agent("deep").set_effort("medium")
    finally:
        ws.close()
    again: Workspace = open_ws()
    try:
        assert (again.agent("deep").effort, again.agent("quick").effort) == ("medium", "low")
    finally:
        again.close()


def test_an_unknown_effort_is_refused_and_changes_nothing(ws: Workspace) -> None:
    with pytest.raises(ConfigurationError, match=r"unknown effort level 'extreme'.*low, medium, high"):
        ws.create_agent("a", effort="extreme")
    assert ws.agents() == []
    agent = ws.create_agent("a", effort="low")
    with pytest.raises(ConfigurationError, match="unknown effort"):
        agent.set_effort("max")
    assert agent.effort == "low"


def test_effort_is_exported_and_imported(ws: Workspace, open_ws: Any, tmp_path: Path) -> None:
    ws.create_agent("quick", effort="low")
    path = ws.export(tmp_path / "export.json")
    assert json.loads(path.read_text())["agents"][0]["effort"] == "low"
    other: Workspace = open_ws(tmp_path / "other")
    try:
        other.import_(path)
        assert other.agent("quick").effort == "low"
    finally:
        other.close()


async def test_effort_reaches_the_wire_only_where_the_model_reasons(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-openai-key-000")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-key-000")
    with serving(Server("oa"), Server("an")) as (oa, an):
        ws.set_provider_setting("openai", "base_url", oa.url + "/v1")
        ws.set_provider_setting("openai", "api", "chat")  # the loopback server speaks Chat Completions
        ws.set_provider_setting("claude-api", "base_url", an.url)
        reasoner = ws.create_agent("r", provider="openai", model="o3", effort="low")
        plain = ws.create_agent("p", provider="openai", model="gpt-4.1", effort="low")
        claude = ws.create_agent("c", provider="claude-api", model="claude-haiku-4-5", effort="medium")
        await reasoner.send("hi")
        await plain.send("hi")
        await claude.send("hi")
        await reasoner.send("again", reasoning="high")  # a request's own level wins
        bodies = [r["body"] for r in oa.requests]
        assert bodies[0]["reasoning_effort"] == "low"
        assert "reasoning_effort" not in bodies[1]  # gpt-4.1 does not reason: nothing is sent
        assert bodies[2]["reasoning_effort"] == "high"
        thinking = an.requests[0]["body"]["thinking"]
        assert thinking["type"] in ("enabled", "adaptive")


def test_cli_create_and_set_effort(memory_keyring: Any) -> None:
    runner = CliRunner()
    created = runner.invoke(app, ["agents", "create", "quick", "--effort", "low"])
    assert created.exit_code == 0, created.output
    assert "effort low" in created.output
    shown = json.loads(runner.invoke(app, ["agents", "show", "quick", "--json"]).output)
    assert shown["effort"] == "low"
    changed = runner.invoke(app, ["agents", "set", "quick", "--effort", "medium"])
    assert changed.exit_code == 0 and "effort medium" in changed.output
    bad = runner.invoke(app, ["agents", "set", "quick", "--effort", "huge", "--system", "x"])
    assert bad.exit_code != 0 and "unknown effort level" in str(bad.exception)
    listed = json.loads(runner.invoke(app, ["agents", "list", "--json"]).output)
    assert [(a["name"], a["effort"], a["system"]) for a in listed] == [("quick", "medium", None)]


async def test_effort_stays_out_of_a_forced_tool_call_and_goes_with_tools(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Thinking models reject (or skip) a forced tool call, so the agent's level is left out of
    such a turn and it goes through; with tools the model may choose, the level is sent."""
    from ironspire.protocols.base import Tool

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-openai-key-000")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-key-000")
    tool = Tool("get_weather", "Weather.", {"type": "object", "properties": {"city": {"type": "string"}}})
    with serving(Server("oa", mode="tools"), Server("an")) as (oa, an):
        ws.set_provider_setting("openai", "base_url", oa.url + "/v1")
        ws.set_provider_setting("openai", "api", "chat")  # the loopback server speaks Chat Completions
        ws.set_provider_setting("claude-api", "base_url", an.url)
        chooser = ws.create_agent("l", provider="openai", model="gpt-6-luna", effort="medium")
        await chooser.send("weather?", tools=[tool])
        assert oa.requests[-1]["body"]["reasoning_effort"] == "medium"
        claude = ws.create_agent("c", provider="claude-api", model="claude-haiku-4-5", effort="high")
        await claude.send("call it", tools=[tool], force_tool="get_weather")
        assert an.requests[-1]["body"].get("thinking", {"type": "disabled"})["type"] == "disabled"
