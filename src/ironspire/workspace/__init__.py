"""The project workspace: agents with their own routes, persisted history, usage ledger.

``Workspace`` is loaded on first use so that importing the package (and starting the CLI)
does not pay for SQLAlchemy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ironspire.workspace.agent import Agent
    from ironspire.workspace.workspace import Workspace

__all__ = ["Agent", "Workspace"]


def __getattr__(name: str) -> Any:
    if name == "Workspace":
        from ironspire.workspace.workspace import Workspace

        return Workspace
    if name == "Agent":
        from ironspire.workspace.agent import Agent

        return Agent
    raise AttributeError(f"module 'ironspire.workspace' has no attribute {name!r}")
