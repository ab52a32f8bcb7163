"""A workspace per test, on the real credential store (an in-memory keyring) and a recording
health double, so workspace tests do not depend on live health probes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ironspire.workspace import Workspace
from support.memory_keyring import MemoryKeyring, use_memory_keyring


class FakeStatus:
    def __init__(self, state: str = "unknown", detail: str = "") -> None:
        self.state, self.detail = state, detail

    @property
    def healthy(self) -> bool:
        return self.state in ("reachable", "unknown")


class FakeHealth:
    """Records what the workspace tells its health monitor."""

    def __init__(self, transport: Any, resolve: Callable[..., Any], *, provider_ids: Any, is_enabled: Any,
                 timeout: float = 5.0) -> None:
        self.resolve, self.provider_ids, self.is_enabled = resolve, provider_ids, is_enabled
        self.observed: list[tuple[str, str | None]] = []
        self.resets: list[str] = []
        self.states: dict[str, FakeStatus] = {}

    def status(self, pid: str) -> FakeStatus:
        return self.states.get(pid, FakeStatus())

    def observe(self, pid: str, error: Any, latency: float) -> None:
        self.observed.append((pid, None if error is None else type(error).__name__))

    async def check(self, ids: Any = None) -> dict[str, FakeStatus]:
        return {pid: self.status(pid) for pid in (ids or self.provider_ids())}

    def reset(self, pid: str) -> None:
        self.resets.append(pid)


@pytest.fixture
def memory_keyring(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[MemoryKeyring]]:
    yield from use_memory_keyring(monkeypatch)


@pytest.fixture
def open_ws(memory_keyring: Any, tmp_path: Path, database_url: str | None) -> Callable[..., Workspace]:
    """Opens a workspace on the engine of this run of the test (``database_url``: SQLite in the
    home, or a fresh PostgreSQL database named by IRONSPIRE_DATABASE_URL)."""

    def opener(home: Path | None = None) -> Workspace:
        from ironspire.transport import RetryPolicy, Transport

        transport = Transport(RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.05))
        return Workspace.open(home or tmp_path / "ws", health=FakeHealth, transport=transport)

    return opener


@pytest.fixture
async def ws(open_ws: Callable[..., Workspace]) -> AsyncIterator[Workspace]:
    workspace = open_ws()
    yield workspace
    await workspace.aclose()
