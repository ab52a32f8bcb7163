"""Provider health shared through the database: workers on one PostgreSQL probe a provider once
per interval between them, and what live traffic showed one worker the others show."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from ironspire.errors import ProviderUnavailable
from ironspire.health import HealthMonitor, HealthState
from ironspire.store import engines
from ironspire.transport import RetryPolicy, Transport
from ironspire.workspace import Workspace
from support.http_stub import Reply, Seen, StubServer
from support.memory_keyring import use_memory_keyring


def _open(home: Path, url: str) -> Workspace:
    return Workspace.open(home, database_url=url, health=HealthMonitor,
                          transport=Transport(RetryPolicy(attempts=1)))


@pytest.fixture
def keyring(monkeypatch: pytest.MonkeyPatch) -> Any:
    yield from use_memory_keyring(monkeypatch)


async def test_workers_probe_once_between_them_and_see_each_others_traffic(
        pg_url: str, tmp_path: Path, keyring: Any) -> None:
    engines.upgrade_url(pg_url)
    mode = {"status": 200}

    def answer(seen: Seen) -> Reply:
        if seen.path.endswith("/api/version"):
            return Reply(200, {"version": "0.12.0"})
        if mode["status"] != 200:
            return Reply(mode["status"], {"error": "overloaded"})
        return Reply(200, {"model": "llama3", "message": {"role": "assistant", "content": "pong"}, "done": True,
                           "done_reason": "stop", "prompt_eval_count": 3, "eval_count": 1})

    async with StubServer(resolver=answer) as server:
        workers = [_open(tmp_path / f"host{i}", pg_url) for i in range(4)]
        try:
            workers[0].set_provider_setting("ollama", "base_url", server.url)
            for w in workers:
                w.refresh()
            results = await asyncio.gather(*(w.health.check(["ollama"], fresh=60) for w in workers))
            probes = [s for s in server.seen if s.path.endswith("/api/version")]
            assert len(probes) == 1  # four workers, one probe
            assert all(r["ollama"].state is HealthState.REACHABLE for r in results)  # the one result serves all
            assert all(w.health.status("ollama").state is HealthState.REACHABLE for w in workers)

            await workers[0].health.check(["ollama"])  # an explicit check (no freshness) probes again
            assert len([s for s in server.seen if s.path.endswith("/api/version")]) == 2

            mode["status"] = 503  # live traffic in one worker...
            workers[1].create_agent("a", provider="ollama", model="llama3")
            with pytest.raises(ProviderUnavailable):
                await workers[1].agent("a").send("hi")
            await asyncio.sleep(1.1)  # ...reaches what the others show at their next read
            for w in workers:
                assert w.health.status("ollama").state is HealthState.UNREACHABLE, w.home
        finally:
            for w in workers:
                await w.aclose()
