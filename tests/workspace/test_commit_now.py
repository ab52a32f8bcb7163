"""A turn is stored on the event loop when nothing is in the way, and never waits there: with
another process holding the database, the turn goes to the commit thread and the loop runs on.
The WAL, which those commits never checkpoint, is checkpointed by a thread once it has grown."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from ironspire.store.sqlite import SqliteTurns
from ironspire.workspace import Workspace, commits
from workspace.loopback import Server, serving


@pytest.fixture
def sqlite_only(ws: Workspace) -> None:
    if not isinstance(ws.store.turns, SqliteTurns):
        pytest.skip("storing at once is the SQLite turn log's")


async def _ticks(stop: asyncio.Event, every: float = 0.01) -> int:
    count = 0
    while not stop.is_set():
        await asyncio.sleep(every)
        count += 1
    return count


async def test_a_turn_waits_for_another_writer_off_the_loop(
        ws: Workspace, open_ws: Any, sqlite_only: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-openai-key-000")
    with serving(Server("oa")) as (srv,):
        ws.set_provider_setting("openai", "base_url", srv.url + "/v1")
        ws.set_default("openai", "gpt-4.1")
        agent = ws.create_agent("a")
        assert (await agent.send("one")).text == "oa: 1 messages, last: one"  # stored at once
        other = sqlite3.connect(ws.path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process is writing, for 0.4 s
        stop = asyncio.Event()
        ticker = asyncio.create_task(_ticks(stop))
        started = time.monotonic()
        turn = asyncio.create_task(agent.send("two"))
        await asyncio.sleep(0.4)
        assert not turn.done()  # its commit waits for the other writer...
        other.execute("ROLLBACK")
        other.close()
        reply = await turn
        elapsed = time.monotonic() - started
        stop.set()
        ticks = await ticker
    assert reply.text == "oa: 3 messages, last: two" and elapsed >= 0.4
    assert ticks >= 20  # ...in a thread: the loop ticked on every 10 ms meanwhile
    again = open_ws()
    assert [m.text for m in again.agent("a").history] == ["one", "oa: 1 messages, last: one", "two", reply.text]
    assert [r["outcome"] for r in again.analytics.turns()] == ["ok", "ok"]
    again.close()


def _turn(agent_id: int, text: str) -> tuple[Any, ...]:
    now = time.time()
    body = f'{{"role": "user", "parts": [{{"type": "text", "text": "{text}"}}]}}'
    usage = (now, "s", agent_id, "openai", "gpt-4.1", 1, 1, 0, 0, 0, None, None, 0.1, "ok", 0, "reported", None,
             0, None)
    return [(agent_id, "user", body, "ok", now)], usage, ()


def test_the_wal_of_turns_stored_at_once_stays_bounded(ws: Workspace, sqlite_only: None) -> None:
    agent = ws.create_agent("a")
    turns = SqliteTurns(Path(ws.path))
    written = 0
    for i in range(3000):  # ~15 MB of messages, paced as turns are
        turn = _turn(agent.id, f"{i} " + "x" * 5_000)
        if turns.write_now([turn]) is None:  # a checkpoint holds it: to the commit thread, as a turn goes
            turns.write(*turn)
        written += 5_000
        if i % 10 == 0:
            time.sleep(0.002)
    deadline = time.monotonic() + 10
    while turns._checkpointing and time.monotonic() < deadline:
        time.sleep(0.01)
    wal = os.path.getsize(f"{ws.path}-wal")
    with sqlite3.connect(ws.path) as conn:
        stored = conn.execute("SELECT count(*) FROM messages WHERE agent_id = ?", (agent.id,)).fetchone()[0]
    turns.close()
    assert stored == 3000
    assert wal < written / 2  # without the checkpoints it holds every page each turn wrote: ~10x more


async def test_turns_ending_in_one_pass_of_the_loop_share_one_commit(ws: Workspace, sqlite_only: None) -> None:
    agents = [ws.create_agent(f"a{i}") for i in range(10)]
    turns = ws.store.turns
    calls: list[int] = []
    write_now = turns.write_now

    def counted(batch: list[tuple[Any, ...]]) -> Any:
        calls.append(len(batch))
        return write_now(batch)

    turns.write_now = counted  # type: ignore[method-assign]
    bad = _turn(10_000, "no such agent")
    stored = await asyncio.gather(*(commits.store_turn(turns, *_turn(a.id, f"t{i}")) for i, a in enumerate(agents)),
                                  commits.store_turn(turns, *bad), return_exceptions=True)
    assert calls == [11]  # one commit for the pass, the failing turn inside it
    assert isinstance(stored[-1], sqlite3.IntegrityError)
    with sqlite3.connect(ws.path) as conn:
        rows = conn.execute("SELECT id, agent_id FROM messages ORDER BY id").fetchall()
    assert [aid for _, aid in rows] == [a.id for a in agents] and [i for i, _ in rows] == stored[:-1]


async def test_a_turn_cancelled_while_its_commit_is_pending_is_still_stored_first(
        ws: Workspace, sqlite_only: None) -> None:
    agent = ws.create_agent("a")
    turns = ws.store.turns
    task = asyncio.create_task(commits.store_turn(turns, *_turn(agent.id, "one")))
    await asyncio.sleep(0)  # the turn has queued for this pass's commit
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with sqlite3.connect(ws.path) as conn:  # the commit landed before the cancellation went on
        assert conn.execute("SELECT count(*) FROM messages WHERE agent_id = ?", (agent.id,)).fetchone() == (1,)


@pytest.mark.parametrize("how", ["write_now", "write_many"])
@pytest.mark.parametrize("size", [1, 3])
def test_a_turn_that_fills_the_disk_fails_with_that_error(ws: Workspace, sqlite_only: None, how: str,
                                                           size: int) -> None:
    agent = ws.create_agent("a")
    turns = SqliteTurns(Path(ws.path))
    store = getattr(turns, how)
    assert store([_turn(agent.id, "first")]) is not None
    conn = turns._now if how == "write_now" else turns._writer
    assert conn is not None
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count={pages + 2}")  # a disk with room for two more pages
    batch = [_turn(agent.id, f"small {i}") for i in range(size - 1)] + [_turn(agent.id, "x" * 100_000)]
    outcomes = store(batch)
    assert outcomes is not None and len(outcomes) == size
    for last, error in outcomes:  # SQLite rolled the whole transaction back: the disk's error, not a ROLLBACK's
        assert last is None and isinstance(error, sqlite3.OperationalError)
        assert (error.sqlite_errorcode & 0xFF) == sqlite3.SQLITE_FULL, error
    conn.execute("PRAGMA max_page_count=4294967294")
    assert store([_turn(agent.id, "after")])[0][1] is None  # type: ignore[index]
    with sqlite3.connect(ws.path) as check:
        texts = [r[0] for r in check.execute("SELECT body FROM messages WHERE agent_id = ? ORDER BY id",
                                             (agent.id,))]
    turns.close()
    assert len(texts) == 2 and "first" in texts[0] and "after" in texts[1]


def test_a_check_the_loops_connection_cannot_make_goes_to_the_reader(ws: Workspace, sqlite_only: None) -> None:
    """The loop's own connection never waits (busy timeout 0). Should SQLite say it is locked for
    a read (another connection recovering the WAL), the check goes to the reader, which waits
    as it always did, instead of failing the turn with "database is locked"."""
    agent = ws.create_agent("a")
    turns = SqliteTurns(Path(ws.path))
    assert turns.write_now([_turn(agent.id, "one")]) is not None  # the loop's connection exists
    expected = turns.check(agent.id)

    class Locked:  # a fault no real lock gives on demand beside an open workspace
        def __init__(self, conn: sqlite3.Connection) -> None:
            self.conn = conn

        def execute(self, statement: str, *args: Any) -> Any:
            busy = sqlite3.OperationalError("database is locked")
            busy.sqlite_errorcode = sqlite3.SQLITE_BUSY  # type: ignore[attr-defined]
            raise busy

        def close(self) -> None:
            self.conn.close()

    turns._now = Locked(turns._now)  # type: ignore[assignment, arg-type]
    try:
        assert turns.check(agent.id) == expected
    finally:
        turns.close()
