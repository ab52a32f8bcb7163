"""Issue 17 item 3: a reply the user already saw is never thrown away. Provider numbers are
clamped before they reach the store, and a commit that fails (here: SQLite's real "database or
disk is full") says the turn was not saved and why, and keeps the turn in a recovery file."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from ironspire.errors import TurnNotSaved
from ironspire.workspace import Workspace
from ironspire.workspace.agent import MAX_TOKENS
from support.replay import Answer, Received, json_answer, loopback


def _ollama(prompt_tokens: Any, reply: str = "the answer") -> Any:
    def answer(request: Received) -> Answer:
        if "/api/chat" not in request.line:
            return json_answer({"models": [{"name": "llama3", "model": "llama3"}]})
        return json_answer({"model": "llama3", "message": {"role": "assistant", "content": reply}, "done": True,
                            "done_reason": "stop", "prompt_eval_count": prompt_tokens, "eval_count": 2})
    return answer


@pytest.mark.parametrize("tokens", [1e20, 10**30, -5])
async def test_absurd_token_counts_are_clamped_and_the_turn_is_kept(ws: Workspace, tokens: Any) -> None:
    async with loopback(_ollama(tokens)) as (url, _seen):
        ws.set_provider_setting("ollama", "base_url", url)
        agent = ws.create_agent("a", "ollama", "llama3")
        reply = await agent.send("hi")
    assert reply.text == "the answer"
    assert [m.text for m in agent.history] == ["hi", "the answer"]
    row = ws.analytics.turns()[-1]
    assert 0 <= row["input_tokens"] <= MAX_TOKENS and row["outcome"] == "ok"


@pytest.mark.sqlite_only("SQLITE_FULL from the file; PostgreSQL commit failures: tests/workspace/test_turn_state.py")
async def test_a_failed_commit_says_so_and_keeps_the_reply(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    from ironspire.store import sqlite as engine_sqlite

    real_connect = engine_sqlite._connect

    def full_disk(path: Path) -> Any:  # the database may not grow by one more page: SQLITE_FULL
        conn = real_connect(path)
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")
        return conn

    async with loopback(_ollama(3, "x" * 20_000)) as (url, _seen):
        ws.set_provider_setting("ollama", "base_url", url)
        agent = ws.create_agent("a", "ollama", "llama3")
        ws.store.turns.close()
        monkeypatch.setattr(engine_sqlite, "_connect", full_disk)
        with pytest.raises(TurnNotSaved) as err:
            await agent.send("remember this")
    message = str(err.value)
    assert "NOT saved" in message and "full" in message and "Traceback" not in message
    recovery = Path(err.value.recovery or "")
    assert recovery.parent == ws.home / "recovery"
    kept = json.loads(await asyncio.to_thread(recovery.read_text))
    assert kept["user"]["parts"][0]["text"] == "remember this" and "x" * 100 in json.dumps(kept["assistant"])
    monkeypatch.setattr(engine_sqlite, "_connect", real_connect)
    ws.store.turns.close()
    assert agent.history == []  # nothing half-written
