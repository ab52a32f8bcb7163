"""A process killed with SIGKILL in the middle of a streamed turn leaves the state as of the
last completed turn, and the database intact."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

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

        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(home), forever.url],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ),
        )
        try:
            assert child.stdout is not None
            line = child.stdout.readline()
            assert line.strip() == "STREAMING", child.stderr.read() if child.stderr else ""
            os.kill(child.pid, signal.SIGKILL)
            child.wait(10)
        finally:
            if child.poll() is None:
                child.kill()
            for stream in (child.stdout, child.stderr):
                if stream is not None:
                    stream.close()
    assert child.returncode == -signal.SIGKILL

    con = sqlite3.connect(home / "ironspire.db")
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    reopened: Workspace = open_ws(home)
    agent = reopened.agent("durable")
    assert [m.text for m in agent.history] == ["first", "ol: 1 messages, last: first"]
    assert [e.status for e in agent.transcript()] == ["ok", "ok"]
    assert [r["outcome"] for r in reopened.analytics.turns()] == ["ok"]
    reopened.close()
