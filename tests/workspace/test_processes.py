"""Several processes on one workspace home, as with the CLI beside a server or two terminals:
each sees the other's configuration changes at its next turn, turns of one agent never
interleave across processes, and concurrent configuration writes do not collide. Every test runs
real processes (``tests/workspace/worker.py``), never threads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import pytest

from ironspire.catalog.providers import CustomEndpoint
from ironspire.workspace import Workspace
from workspace.loopback import Server, serving

TESTS = Path(__file__).resolve().parents[1]


class Worker:
    """A child process holding the workspace open; ``ask`` sends one command and waits."""

    def __init__(self, home: Path) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
        self.proc = subprocess.Popen([sys.executable, str(TESTS / "workspace" / "worker.py"), str(home)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        assert self._read() == {"ready": True}

    def _read(self) -> Any:
        out: IO[str] | None = self.proc.stdout
        assert out is not None
        line = out.readline()
        assert line, f"worker exited with {self.proc.wait()}"
        return json.loads(line)

    def start(self, **cmd: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()

    def ask(self, **cmd: Any) -> Any:
        self.start(**cmd)
        return self._read()

    def result(self) -> Any:
        return self._read()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.start(op="quit")
            self.proc.wait(30)


@contextmanager
def workers(home: Path, count: int) -> Iterator[list[Worker]]:
    started: list[Worker] = []
    try:
        for _ in range(count):
            started.append(Worker(home))
        yield started
    finally:
        for w in started:
            w.close()


async def test_each_process_sees_the_others_configuration_at_its_next_turn(ws: Workspace) -> None:
    with serving(Server("first"), Server("second")) as (first, second):
        ws.set_provider_setting("ollama", "base_url", first.url)
        ws.set_default("ollama", "llama3")
        ws.create_agent("x")
        with workers(ws.home, 1) as (other,):
            assert other.ask(op="send", agent="x", text="one") == {
                "ok": True, "text": "first: 1 messages, last: one"}

            ws.set_provider_setting("ollama", "base_url", second.url)  # a base URL changed here...
            assert other.ask(op="send", agent="x", text="two")["text"] == "second: 3 messages, last: two"

            ws.add_custom_endpoint(CustomEndpoint("gw", first.url + "/v1", "m"))  # ...a new endpoint and route
            ws.set_default("custom-gw", "m")
            assert other.ask(op="send", agent="x", text="three")["text"] == "first: 5 messages, last: three"

            await ws.disable("custom-gw")  # ...a provider disabled
            refused = other.ask(op="send", agent="x", text="four")
            assert refused["error"] == "ConfigurationError" and "disabled" in refused["message"]

            await ws.enable("custom-gw")  # ...and the agent moved to its own route
            ws.agent("x").switch("ollama", "llama3")
            assert other.ask(op="send", agent="x", text="five")["text"] == "second: 7 messages, last: five"

            ws.set_setting("max_tokens", 77)  # ...a workspace setting
            other.ask(op="send", agent="x", text="six")
            assert second.requests[-1]["body"]["options"]["num_predict"] == 77
        # and this process sees the other's turns: its next turn is built on them
        reply = await ws.agent("x").send("seven")
        assert reply.text == "second: 11 messages, last: seven"
    assert [m.text for m in ws.agent("x").history][::2] == ["one", "two", "three", "five", "six", "seven"]


@pytest.mark.parametrize("processes", [2, 3, 4])
async def test_turns_of_one_agent_from_several_processes_never_interleave(ws: Workspace, processes: int) -> None:
    turns = 12
    with serving(Server("ol", drip=0.002)) as (srv,):
        ws.set_provider_setting("ollama", "base_url", srv.url)
        ws.create_agent("shared", provider="ollama", model="llama3")
        with workers(ws.home, processes) as procs:
            for i, w in enumerate(procs):
                w.start(op="burst", agent="shared", prefix=f"p{i}-", n=turns)
            assert [w.result() for w in procs] == [{"ok": True}] * processes
    history = ws.agent("shared").history
    assert len(history) == 2 * turns * processes
    for index in range(1, len(history), 2):  # every reply saw exactly the history stored before it
        user, reply = history[index - 1], history[index]
        assert reply.text == f"ol: {index} messages, last: {user.text}"
    sent = sorted(m.text for m in history[::2])
    assert sent == sorted(f"p{i}-{n}" for i in range(processes) for n in range(turns))
    assert [r["outcome"] for r in ws.analytics.turns()] == ["ok"] * turns * processes


def test_eight_processes_writing_one_provider_setting_do_not_collide(ws: Workspace) -> None:
    before = ws.store.config_revision()
    with workers(ws.home, 8) as procs:
        for i, w in enumerate(procs):
            w.start(op="set", pid="ollama", name="base_url", value=f"http://127.0.0.1:{9000 + i}/", n=10)
        assert [w.result() for w in procs] == [{"ok": True}] * 8
    assert ws.store.config_revision() == before + 80  # every write bumped the revision once
    assert ws.refresh()
    assert ws.provider_settings("ollama")["base_url"].startswith("http://127.0.0.1:90")
