"""Opening the workspace from a command, and the helpers the workspace commands share.

Kept apart from the command modules so their top level imports only Typer: SQLAlchemy and
the adapters load when a command runs, not when `ironspire --help` starts.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ironspire.workspace import Agent, Workspace


@contextmanager
def workspace() -> Iterator[Workspace]:
    from ironspire.workspace import Workspace

    ws = Workspace.open()
    try:
        yield ws
    finally:
        ws.close()


def health_warning(ws: Workspace, pid: str | None) -> str | None:
    """A short warning when the provider is known to be unhealthy (unknown counts as fine)."""
    if pid is None:
        return None
    from ironspire.health import HealthState

    status = ws.health.status(pid)
    if status.healthy or status.state is HealthState.UNKNOWN:
        return None
    state = status.state.value.replace("_", " ")
    return f"{pid} is {state}" + (f": {status.detail}" if status.detail else "")


def agent_record(ws: Workspace, agent: Agent) -> dict[str, Any]:
    route = agent.route
    pid = route.provider if route else None
    return {
        "name": agent.name,
        "provider": pid,
        "model": route.model if route else None,
        "inherited": agent.inherits,
        "override": None if agent.inherits else {"provider": agent.own_provider, "model": agent.own_model},
        "system": agent.system,
        "warning": health_warning(ws, pid),
    }
