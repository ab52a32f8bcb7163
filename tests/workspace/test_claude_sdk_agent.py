"""An agent on claude-sdk through the whole workspace: the real claude-agent-sdk drives the
stand-in CLI (tests/fixtures/claude/fake_claude.py, a recorded stream-json turn), and turns are
streamed, stored, resumed, charged to the ledger and handed over to claude-api.

Figures are the recorded turn's: text "4", usage 2 in / 3 out / 20642 cache read / 9266 cache
write, total_cost_usd 0.10306599999999999, session e88a21f9-....
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from ironspire import paths
from ironspire.messages import TextDelta, Usage
from ironspire.workspace import Workspace
from workspace.loopback import Server, serving

pytest.importorskip("claude_agent_sdk")
pytestmark = pytest.mark.skipif(os.name == "nt", reason="the stand-in CLI is started through a POSIX shell wrapper")

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "claude" / "fake_claude.py"
SESSION_ID = "e88a21f9-e5b3-4a30-94e2-8cf6f8a98e0c"
REPORTED_COST = 0.10306599999999999


@pytest.fixture
def fake_cli(tmp_path: Path) -> str:
    wrapper = tmp_path / "bin" / "claude"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FIXTURE}" "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


def cli_calls() -> list[dict[str, Any]]:
    log = paths.home() / "claude-sdk" / "fake-claude-calls.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()]


async def test_streamed_turns_history_ledger_and_resume(ws: Workspace, fake_cli: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-api03-must-not-reach-the-cli-0000")
    ws.set_provider_setting("claude-sdk", "cli_path", fake_cli)
    agent = ws.create_agent("sub", provider="claude-sdk", model="claude-haiku-4-5", system="Be brief.")

    events = [e async for e in agent.stream("What is 2+2?")]

    assert TextDelta("4") in events
    first = agent.history
    assert [(m.role, m.text) for m in first] == [("user", "What is 2+2?"), ("assistant", "4")]
    assert (first[1].provider, first[1].model) == ("claude-sdk", "claude-haiku-4-5")
    assert first[1].meta["session_id"] == SESSION_ID
    (call,) = cli_calls()
    assert call["resume"] is None and "ANTHROPIC_API_KEY" not in call["env"]
    assert call["argv"][call["argv"].index("--system-prompt") + 1] == "Be brief."
    assert call["argv"][call["argv"].index("--model") + 1] == "claude-haiku-4-5"

    (row,) = ws.analytics.turns()
    assert (row["agent"], row["provider"], row["model"], row["outcome"]) == ("sub", "claude-sdk",
                                                                            "claude-haiku-4-5", "ok")
    assert row["cost_usd"] == 0  # the subscription bills nothing per token
    assert row["api_cost_usd"] == pytest.approx(REPORTED_COST)  # what the CLI says the API would have cost
    assert (row["input_tokens"], row["output_tokens"], row["cache_read_tokens"], row["cache_write_tokens"]) == (
        2, 3, 20642, 9266)
    assert row["streamed"]

    reopened = Workspace.open(ws.home, health=type(ws.health), transport=ws.transport)
    try:
        again = await reopened.agent("sub").send("And 3+3?")
    finally:
        reopened.close()

    second = cli_calls()[1]
    assert second["resume"] == SESSION_ID  # the stored session id, read back from the database
    assert second["prompts"] == [[{"type": "text", "text": "And 3+3?"}]]  # only what the CLI has not seen
    assert again.text == "4" and again.usage == Usage(2, 3, 20642, 9266)


async def test_switching_from_claude_sdk_to_claude_api_keeps_every_sdk_turn(
    ws: Workspace, fake_cli: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-key-000")
    ws.set_provider_setting("claude-sdk", "cli_path", fake_cli)
    agent = ws.create_agent("mover", provider="claude-sdk", model="claude-haiku-4-5")
    await agent.send("What is 2+2?")
    await agent.send("Again: what is 2+2?")

    with serving(Server("api")) as (srv,):
        ws.set_provider_setting("claude-api", "base_url", srv.url)
        agent.switch("claude-api", "claude-haiku-4-5")
        reply = await agent.send("Thanks. Now say hi.")

    sent = srv.requests[0]["body"]["messages"]
    assert [(m["role"], m["content"][0]["text"]) for m in sent] == [
        ("user", "What is 2+2?"), ("assistant", "4"),
        ("user", "Again: what is 2+2?"), ("assistant", "4"),
        ("user", "Thanks. Now say hi."),
    ]
    assert reply.text == "api: 5 messages, last: Thanks. Now say hi."
    assert [m.provider for m in agent.history if m.role == "assistant"] == ["claude-sdk", "claude-sdk", "claude-api"]
    providers = [r["provider"] for r in ws.analytics.turns()]
    assert sorted(providers) == ["claude-api", "claude-sdk", "claude-sdk"]
