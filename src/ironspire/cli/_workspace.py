"""Opening the workspace from a command.

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


def agent_record(ws: Workspace, agent: Agent) -> dict[str, Any]:
    """The agent's row as `agents list --json` prints it (the view layer builds it)."""
    from ironspire import views

    return views.agent(ws, agent.name).to_json()
