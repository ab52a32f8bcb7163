"""Ironspire: a multi-agent workspace where each agent talks to the model of its choice.

The package imports nothing heavy at start-up: the public names below are loaded on first use,
so `import ironspire` (and so the CLI's start) stays fast however many protocols exist.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "Message": "ironspire.messages",
    "Text": "ironspire.messages",
    "Image": "ironspire.messages",
    "ToolCall": "ironspire.messages",
    "ToolResult": "ironspire.messages",
    "Reasoning": "ironspire.messages",
    "Usage": "ironspire.messages",
    "Registry": "ironspire.catalog.models",
    "ModelSpec": "ironspire.catalog.models",
    "ProviderSpec": "ironspire.catalog.providers",
    "IronspireError": "ironspire.errors",
    "Workspace": "ironspire.workspace",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ironspire' has no attribute {name!r}")
    return getattr(import_module(module), name)
