"""Ironspire: a multi-agent workspace where each agent talks to the model of its choice.

The package imports nothing heavy at start-up: the public names below are loaded on first use,
so `import ironspire` (and so the CLI's start) stays fast however many protocols exist.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time __getattr__ loads these on first use
    from ironspire.catalog.models import ModelSpec as ModelSpec
    from ironspire.catalog.models import Registry as Registry
    from ironspire.catalog.providers import ProviderSpec as ProviderSpec
    from ironspire.errors import AuthenticationError as AuthenticationError
    from ironspire.errors import BadRequest as BadRequest
    from ironspire.errors import BudgetExceeded as BudgetExceeded
    from ironspire.errors import CapabilityError as CapabilityError
    from ironspire.errors import ConfigurationError as ConfigurationError
    from ironspire.errors import ContextWindowExceeded as ContextWindowExceeded
    from ironspire.errors import CredentialsMissing as CredentialsMissing
    from ironspire.errors import IronspireError as IronspireError
    from ironspire.errors import ModelNotFound as ModelNotFound
    from ironspire.errors import ProviderError as ProviderError
    from ironspire.errors import ProviderUnavailable as ProviderUnavailable
    from ironspire.errors import RateLimitError as RateLimitError
    from ironspire.messages import Document as Document
    from ironspire.messages import Finish as Finish
    from ironspire.messages import Image as Image
    from ironspire.messages import Message as Message
    from ironspire.messages import Reasoning as Reasoning
    from ironspire.messages import ReasoningDelta as ReasoningDelta
    from ironspire.messages import StreamEvent as StreamEvent
    from ironspire.messages import Text as Text
    from ironspire.messages import TextDelta as TextDelta
    from ironspire.messages import ToolCall as ToolCall
    from ironspire.messages import ToolCallDelta as ToolCallDelta
    from ironspire.messages import ToolCallEnd as ToolCallEnd
    from ironspire.messages import ToolCallStart as ToolCallStart
    from ironspire.messages import ToolResult as ToolResult
    from ironspire.messages import Usage as Usage
    from ironspire.messages import UsageEvent as UsageEvent
    from ironspire.messages import cache_here as cache_here
    from ironspire.protocols.base import PromptCache as PromptCache
    from ironspire.protocols.base import Tool as Tool
    from ironspire.workspace import Agent as Agent
    from ironspire.workspace import Workspace as Workspace

__version__ = "0.1.0"

_LAZY = {
    "Message": "ironspire.messages",
    "Text": "ironspire.messages",
    "Image": "ironspire.messages",
    "Document": "ironspire.messages",
    "ToolCall": "ironspire.messages",
    "ToolResult": "ironspire.messages",
    "Reasoning": "ironspire.messages",
    "Usage": "ironspire.messages",
    # what ``agent.stream`` yields, so callers can tell the events apart
    "StreamEvent": "ironspire.messages",
    "TextDelta": "ironspire.messages",
    "ReasoningDelta": "ironspire.messages",
    "ToolCallStart": "ironspire.messages",
    "ToolCallDelta": "ironspire.messages",
    "ToolCallEnd": "ironspire.messages",
    "UsageEvent": "ironspire.messages",
    "Finish": "ironspire.messages",
    # what ``agent.send(..., tools=[...], cache=...)`` takes, and the "cache up to here" mark
    "Tool": "ironspire.protocols.base",
    "PromptCache": "ironspire.protocols.base",
    "cache_here": "ironspire.messages",
    "Registry": "ironspire.catalog.models",
    "ModelSpec": "ironspire.catalog.models",
    "ProviderSpec": "ironspire.catalog.providers",
    "IronspireError": "ironspire.errors",
    # the errors a caller handles: each names the provider and says what to do
    "ConfigurationError": "ironspire.errors",
    "CredentialsMissing": "ironspire.errors",
    "CapabilityError": "ironspire.errors",
    "BudgetExceeded": "ironspire.errors",
    "ProviderError": "ironspire.errors",
    "AuthenticationError": "ironspire.errors",
    "RateLimitError": "ironspire.errors",
    "ProviderUnavailable": "ironspire.errors",
    "BadRequest": "ironspire.errors",
    "ContextWindowExceeded": "ironspire.errors",
    "ModelNotFound": "ironspire.errors",
    "Workspace": "ironspire.workspace",
    "Agent": "ironspire.workspace",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ironspire' has no attribute {name!r}")
    return getattr(import_module(module), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
