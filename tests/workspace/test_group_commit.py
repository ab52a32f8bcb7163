"""Turns that end together are stored together (group commit), and each is still its own:
every agent gets exactly its messages and ledger row, and a turn that cannot be stored fails
alone while the others in its transaction commit."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from ironspire.store.sqlite import SqliteTurns
from ironspire.workspace import Workspace, commits
from workspace.loopback import Server, serving

AGENTS = 24


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-openai-key-000")


async def test_turns_ending_together_are_each_stored_whole(ws: Workspace, open_ws: Any, keys: None) -> None:
    batches: list[int] = []
    turns = ws.store.turns
    many = getattr(turns, "write_many", None)
    if many is not None:  # SQLite: hold the first commit until the others have queued behind it
        turns.write_now = lambda *args: None  # as when another writer is busy: every turn to the commit thread
        def counted(args: list[tuple[Any, ...]]) -> list[tuple[Any, BaseException | None]]:
            if not batches:
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline and commits._writers[turns]._jobs.qsize() + len(args) < AGENTS:
                    time.sleep(0.01)
            batches.append(len(args))
            return many(args)

        turns.write_many = counted
    with serving(Server("oa")) as (srv,):
        ws.set_provider_setting("openai", "base_url", srv.url + "/v1")
        ws.set_default("openai", "gpt-4.1")
        agents = [ws.create_agent(f"a{i}") for i in range(AGENTS)]
        replies = await asyncio.gather(*(a.send(f"hello {i}") for i, a in enumerate(agents)))
        assert [r.text for r in replies] == [f"oa: 1 messages, last: hello {i}" for i in range(AGENTS)]
        second = await agents[3].send("again")  # the history stored in the batch is the one sent next
    assert second.text == "oa: 3 messages, last: again"
    if many is not None:
        assert sum(batches[:-1]) == AGENTS and len(batches) <= 3 and batches[-1] == 1  # 24 turns in 1 or 2 commits
    again = open_ws()
    for i in range(AGENTS):
        history = again.agent(f"a{i}").history
        expected = 4 if i == 3 else 2
        assert len(history) == expected and history[0].text == f"hello {i}" and history[1].text == replies[i].text
    rows = again.analytics.turns()
    again.close()
    assert len(rows) == AGENTS + 1 and all(r["outcome"] == "ok" for r in rows)


def _turn(agent_id: int, text: str) -> tuple[Any, ...]:
    now = time.time()
    messages = [(agent_id, "user", f'{{"role": "user", "parts": [{{"type": "text", "text": "{text}"}}]}}', "ok", now)]
    usage = (now, "s", agent_id, "openai", "gpt-4.1", 1, 1, 0, 0, 0, None, None, 0.1, "ok", 0, "reported", None,
             0, None)
    return messages, usage, ()


def test_a_turn_that_cannot_be_stored_fails_alone(ws: Workspace) -> None:
    if not isinstance(ws.store.turns, SqliteTurns):
        pytest.skip("group commit is the SQLite turn log's")
    a, b = ws.create_agent("a"), ws.create_agent("b")
    turns = SqliteTurns(Path(ws.path))
    outcomes = turns.write_many([_turn(a.id, "one"), _turn(10_000, "no such agent"), _turn(b.id, "three")])
    turns.close()
    assert outcomes[0][1] is None and outcomes[2][1] is None
    assert isinstance(outcomes[1][1], sqlite3.IntegrityError) and outcomes[1][0] is None
    with sqlite3.connect(ws.path) as conn:
        stored = conn.execute("SELECT agent_id, body FROM messages ORDER BY id").fetchall()
        ledger = conn.execute("SELECT agent_id FROM usage ORDER BY id").fetchall()
    assert [(aid, "no such" in body) for aid, body in stored] == [(a.id, False), (b.id, False)]
    assert ledger == [(a.id,), (b.id,)]


def test_a_failed_commit_stores_none_of_the_batch(ws: Workspace) -> None:
    if not isinstance(ws.store.turns, SqliteTurns):
        pytest.skip("group commit is the SQLite turn log's")
    a, b = ws.create_agent("a"), ws.create_agent("b")
    turns = SqliteTurns(Path(ws.path))
    other = sqlite3.connect(ws.path, isolation_level=None, timeout=0)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock past the busy timeout
    turns._connection().execute("PRAGMA busy_timeout=50")
    outcomes = turns.write_many([_turn(a.id, "one"), _turn(b.id, "two")])
    other.execute("ROLLBACK")
    other.close()
    assert all(result is None and isinstance(error, sqlite3.OperationalError) for result, error in outcomes)
    with sqlite3.connect(ws.path) as conn:
        assert conn.execute("SELECT count(*) FROM messages").fetchone() == (0,)
    assert [r[1] for r in turns.write_many([_turn(a.id, "one"), _turn(b.id, "two")])] == [None, None]
    turns.close()


def test_a_batch_stores_every_row_in_order_and_returns_each_turns_last_message(ws: Workspace) -> None:
    """The batch is inserted a few statements at a time (as many rows as SQLite's parameter
    limit allows in each); every turn must still get the id of its own last message, and the
    rows must land in the turns' order, earlier attempts before the answer."""
    if not isinstance(ws.store.turns, SqliteTurns):
        pytest.skip("group commit is the SQLite turn log's")
    agents = [ws.create_agent(f"a{i}") for i in range(7)]
    turns = SqliteTurns(Path(ws.path))
    turns._connection().setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 17 * 2)  # 2 ledger rows, 6 messages a statement
    batch = []
    for i, agent in enumerate(agents):
        messages, usage, _ = _turn(agent.id, f"turn {i}")
        reply = (agent.id, "assistant", messages[0][2].replace("user", "assistant"), "ok", messages[0][4])
        failed = (*usage[:13], "RateLimitError", *usage[14:])
        batch.append(([*messages, reply], usage, (failed,) if i % 3 == 0 else ()))
    outcomes = turns.write_many(batch)
    turns.close()
    assert all(error is None for _, error in outcomes)
    with sqlite3.connect(ws.path) as conn:
        stored = conn.execute("SELECT id, agent_id, role, body FROM messages ORDER BY id").fetchall()
        ledger = conn.execute("SELECT agent_id, outcome FROM usage ORDER BY id").fetchall()
    assert [(aid, role, json.loads(body)["parts"][0]["text"]) for _, aid, role, body in stored] == [
        (a.id, role, f"turn {i}") for i, a in enumerate(agents) for role in ("user", "assistant")]
    assert [last for last, _ in outcomes] == [row[0] for row in stored if row[2] == "assistant"]
    assert ledger == [row for i, a in enumerate(agents)
                      for row in ([(a.id, "RateLimitError")] if i % 3 == 0 else []) + [(a.id, "ok")]]
