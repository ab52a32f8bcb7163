"""Model discovery through the Transport: the cache around each protocol's ``list_models``.

A listing is made like any request: a Target for the provider (its URL and key as a turn would
use them), sent through the workspace's pools, its outcome seen by the health monitor. What a
protocol asks and how it reads the answer is the adapter's (``Backend.list_models``); what is
remembered, and for how long, is ``catalog.discovery``'s.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from ironspire.catalog.discovery import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_TIMEOUT,
    DiscoveryCache,
    DiscoveryResult,
    cache_key,
    cached,
)
from ironspire.catalog.models import dynamic_model
from ironspire.catalog.providers import CustomEndpoint, ProviderSpec, builtin, is_builtin
from ironspire.protocols import backend_for
from ironspire.wire import Secrets, Target

if TYPE_CHECKING:
    from ironspire.transport import Transport

#: the model a listing's Target names (a listing is about no model; errors still need one)
LISTING_MODEL = "(model listing)"


def listing_target(
    spec: ProviderSpec, base_url: str, api_key: str | None = None, *,
    read_timeout: float = DEFAULT_TIMEOUT, connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
) -> Target:
    secrets = Secrets({"api_key": api_key} if api_key else {})
    return Target(spec, dynamic_model(spec.id, LISTING_MODEL), base_url, secrets,
                  timeout=read_timeout, connect_timeout=connect_timeout)


async def discover(
    spec: ProviderSpec,
    base_url: str | None = None,
    api_key: str | None = None,
    *,
    transport: Transport,
    refresh: bool = False,
    cache: DiscoveryCache | None = None,
    read_timeout: float = DEFAULT_TIMEOUT,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
) -> DiscoveryResult:
    """What ``spec``'s server lists now (or a cached answer), by its protocol's own rules.

    ``base_url`` is normalised by the protocol (Ollama's ``OLLAMA_HOST`` rules) before it keys
    the cache, so the same server asked two ways is one entry.
    """
    backend = backend_for(spec.protocol, transport)
    base = backend.base_url(spec, {"base_url": base_url} if base_url else {}, None)
    target = listing_target(spec, base, api_key, read_timeout=read_timeout, connect_timeout=connect_timeout)

    async def fetch() -> DiscoveryResult:
        return await backend.list_models(target, read_timeout=read_timeout, connect_timeout=connect_timeout)

    return await cached(cache_key(spec.id, base, api_key), refresh, cache, fetch)


async def discover_ollama(
    base_url: str | None = None,
    *,
    transport: Transport,
    refresh: bool = False,
    cache: DiscoveryCache | None = None,
    read_timeout: float = DEFAULT_TIMEOUT,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
) -> DiscoveryResult:
    """The chat models a local (or remote) Ollama server has pulled."""
    return await discover(builtin("ollama"), base_url, transport=transport, refresh=refresh, cache=cache,
                          read_timeout=read_timeout, connect_timeout=connect_timeout)


async def discover_openai_compatible(
    provider: str,
    base_url: str,
    api_key: str | None = None,
    *,
    transport: Transport,
    refresh: bool = False,
    cache: DiscoveryCache | None = None,
    read_timeout: float = DEFAULT_TIMEOUT,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
) -> DiscoveryResult:
    """``GET {base}/models`` on an OpenAI-compatible endpoint (groq, together, fireworks, custom-*)."""
    spec = builtin(provider) if is_builtin(provider) else _listing_spec(provider, base_url)
    return await discover(spec, base_url, api_key, transport=transport, refresh=refresh, cache=cache,
                          read_timeout=read_timeout, connect_timeout=connect_timeout)


def _listing_spec(provider: str, base_url: str) -> ProviderSpec:
    """A custom endpoint's spec from its id and URL alone: all a listing needs."""
    return replace(CustomEndpoint(provider.removeprefix("custom-"), base_url, "-").spec(), id=provider)
