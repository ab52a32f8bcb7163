"""Model discovery as a test calls it: through a real Transport opened for the one call.

Discovery goes through the workspace's Transport in production (``protocols.listing``); a test
about listing alone needs no workspace, so each call gets a Transport of its own, closed after.
"""

from __future__ import annotations

from typing import Any

from ironspire.catalog.discovery import DiscoveryResult
from ironspire.protocols import listing
from ironspire.transport import Transport


async def discover(*args: Any, **kwargs: Any) -> DiscoveryResult:
    async with Transport() as transport:
        return await listing.discover(*args, transport=transport, **kwargs)


async def discover_ollama(*args: Any, **kwargs: Any) -> DiscoveryResult:
    async with Transport() as transport:
        return await listing.discover_ollama(*args, transport=transport, **kwargs)


async def discover_openai_compatible(*args: Any, **kwargs: Any) -> DiscoveryResult:
    async with Transport() as transport:
        return await listing.discover_openai_compatible(*args, transport=transport, **kwargs)
