"""A process killed with SIGKILL in the middle of a streamed turn leaves the state as of the
last completed turn, and the database intact.

The first test kills the child while the server is provably mid-stream: the server has sent
part of the reply, holds the stream open without its terminator (``mid_stream``), and only
after the kill sees the client's side of the connection close (``client_gone``). The second
kills a child that is committing turns back to back, so the kill can land inside a commit."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from ironspire.workspace import Workspace
from workspace.loopback import Server, serving

CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from ironspire.workspace import Workspace

    async def main():
        ws = Workspace.open(sys.argv[1])
        ws.set_provider_setting("ollama", "base_url", sys.argv[2])
        agent = ws.agent("durable")
        n = 0
        async for _ in agent.stream("this turn never finishes"):
            n += 1
            if n == 2:
                print("STREAMING", flush=True)

    asyncio.run(main())
    """
)


def test_kill_9_during_a_streamed_turn(open_ws: Any, tmp_path: Path) -> None:
    home = tmp_path / "ws"
    ws: Workspace = open_ws(home)
    with serving(Server("ol"), Server("forever", mode="endless")) as (ok, forever):
        ws.set_provider_setting("ollama", "base_url", ok.url)
        agent = ws.create_agent("durable", provider="ollama", model="llama3")
        asyncio.run(agent.send("first"))
        asyncio.run(ws.aclose())

        def streaming(out: IO[str]) -> None:
            assert out.readline().strip() == "STREAMING"
            assert forever.mid_stream.wait(5), "the server is not holding the stream open"
            assert not forever.client_gone.is_set()

        status = _kill_9_when([sys.executable, "-c", CHILD, str(home), forever.url], streaming)
        assert forever.client_gone.wait(5), "the server never saw the killed client go"
        assert len(forever.requests) == 1
    assert status == -signal.SIGKILL

    con = sqlite3.connect(home / "ironspire.db")
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    reopened: Workspace = open_ws(home)
    agent = reopened.agent("durable")
    assert [m.text for m in agent.history] == ["first", "ol: 1 messages, last: first"]
    assert [e.status for e in agent.transcript()] == ["ok", "ok"]
    assert [r["outcome"] for r in reopened.analytics.turns()] == ["ok"]
    with serving(Server("again")) as (again,):  # the reopened workspace carries on
        reopened.set_provider_setting("ollama", "base_url", again.url)
        assert asyncio.run(agent.send("second")).text == "again: 3 messages, last: second"
    asyncio.run(reopened.aclose())


def _kill_9_when(argv: list[str], ready: Callable[[IO[str]], None]) -> int | None:
    """Runs ``argv``, waits for ``ready`` (reading the child's stdout) to return, then kills the
    child with SIGKILL and waits for it; its exit status."""
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        assert child.stdout is not None and child.stderr is not None
        try:
            ready(child.stdout)
        except AssertionError as exc:  # the child stopped talking: show why, if it ended
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(5)
            raise AssertionError(child.stderr.read() if child.poll() is not None else str(exc)) from None
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()
    return child.returncode


def _intact(home: Path) -> None:
    con = sqlite3.connect(home / "ironspire.db")
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert con.execute("PRAGMA foreign_key_check").fetchall() == []
    con.close()


BURST = textwrap.dedent(
    """
    import asyncio, sys
    from ironspire.workspace import Workspace

    async def main():
        ws = Workspace.open(sys.argv[1])
        agent = ws.agent("busy")
        n = 0
        while True:
            n += 1
            async for _ in agent.stream(f"turn {n}"):
                pass
            print(n, flush=True)

    asyncio.run(main())
    """
)


def test_kill_9_while_turns_are_being_committed(open_ws: Any, tmp_path: Path) -> None:
    home = tmp_path / "ws"
    ws: Workspace = open_ws(home)
    with serving(Server("ol")) as (ok,):
        ws.set_provider_setting("ollama", "base_url", ok.url)
        ws.create_agent("busy", provider="ollama", model="llama3")
        ws.close()

        def eight_turns(out: IO[str]) -> None:
            for _ in range(8):
                assert out.readline().strip()

        _kill_9_when([sys.executable, "-c", BURST, str(home)], eight_turns)  # somewhere in turn 9's stream or commit
    _intact(home)
    reopened: Workspace = open_ws(home)
    entries = reopened.agent("busy").transcript()
    turns = len(entries) // 2
    assert turns >= 8 and len(entries) == 2 * turns  # whole turns only
    assert all(e.status == "ok" for e in entries)
    assert [e.message.text for e in entries[::2]] == [f"turn {n}" for n in range(1, turns + 1)]
    assert [e.message.role for e in entries[1::2]] == ["assistant"] * turns
    assert len(reopened.analytics.turns()) == turns  # one ledger row per committed turn, no more
    reopened.close()


FLEET = textwrap.dedent(
    """
    import asyncio, sys
    from ironspire.workspace import Workspace

    async def run(agent):
        n = 0
        while True:
            n += 1
            async for _ in agent.stream(f"{agent.name} turn {n}"):
                pass
            print(agent.name, n, flush=True)

    async def main():
        ws = Workspace.open(sys.argv[1])
        await asyncio.gather(*(run(ws.agent(f"a{i}")) for i in range(int(sys.argv[2]))))

    asyncio.run(main())
    """
)


def test_kill_9_while_a_fleet_commits_together(open_ws: Any, tmp_path: Path) -> None:
    """Turns ending together share one transaction (group commit): a kill inside it loses the
    whole batch, none of which had returned, and leaves every agent's turns whole."""
    home, agents = tmp_path / "ws", 12
    ws: Workspace = open_ws(home)
    with serving(Server("ol")) as (ok,):
        ws.set_provider_setting("ollama", "base_url", ok.url)
        for i in range(agents):
            ws.create_agent(f"a{i}", provider="ollama", model="llama3")
        ws.close()
        done: dict[str, int] = {}

        def a_few_turns_each(out: IO[str]) -> None:
            while len(done) < agents or min(done.values()) < 3:  # every agent has committed a few turns
                line = out.readline().split()
                assert line
                done[line[0]] = int(line[1])

        _kill_9_when([sys.executable, "-c", FLEET, str(home), str(agents)], a_few_turns_each)
    _intact(home)
    reopened: Workspace = open_ws(home)
    total = 0
    for i in range(agents):
        name = f"a{i}"
        entries = reopened.agent(name).transcript()
        turns = len(entries) // 2
        assert len(entries) == 2 * turns and turns >= done[name]  # whole turns, every reported one kept
        assert [e.message.text for e in entries[::2]] == [f"{name} turn {n}" for n in range(1, turns + 1)]
        assert [e.message.role for e in entries[1::2]] == ["assistant"] * turns
        total += turns
    assert len(reopened.analytics.turns()) == total  # one ledger row per committed turn, no more
    reopened.close()
