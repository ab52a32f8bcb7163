"""Model rows for listings and pickers: capabilities, prices, context window, where each came from.

Built-in models need nothing but the data file; discovered ones (Ollama, custom endpoints,
providers that list their models) need the workspace, which asks those providers through
``discover`` first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ironspire.catalog.models import CAPABILITIES, Capability, Registry
from ironspire.catalog.providers import builtin, is_builtin
from ironspire.errors import ConfigurationError
from ironspire.views.records import ModelPriceView, ModelView

if TYPE_CHECKING:
    from ironspire.catalog.discovery import DiscoveryResult
    from ironspire.workspace import Workspace

def models(
    ws: Workspace | None = None, *, provider: str | None = None, capability: str | None = None
) -> list[ModelView]:
    """The registry's models (the workspace's, else the built-in one), optionally filtered.

    An unknown provider or capability raises with suggestions, changing nothing.
    """
    cap = check_capability(capability)
    if provider is not None:
        if ws is not None:
            ws.provider(provider)  # an unknown custom endpoint fails here, listing the configured ones
        elif not is_builtin(provider) and not provider.startswith("custom-"):
            builtin(provider)  # raises with suggestions
    registry = ws.registry if ws is not None else Registry()
    names = {pid: ws.provider(pid).display_name for pid in ws.provider_ids()} if ws is not None else {}
    return [ModelView.of(m, names.get(m.provider) or _builtin_name(m.provider))
            for m in registry.list(provider=provider, capability=cap)]


def check_capability(capability: str | None) -> Capability | None:
    if capability is None:
        return None
    for c in CAPABILITIES:
        if c == capability:
            return c
    import difflib

    close = difflib.get_close_matches(capability, CAPABILITIES, n=1)
    raise ConfigurationError(
        f"unknown capability {capability!r}.",
        hint=(f"Did you mean {close[0]}? " if close else "") + "Use one of: " + ", ".join(CAPABILITIES) + ".",
    )


def needs_workspace(provider: str | None) -> bool:
    """Whether a listing may hold models that only the workspace knows of or can ask for."""
    if provider is None or provider.startswith("custom-"):
        return True
    return builtin(provider).lists_models


def worth_asking(ws: Workspace, pid: str) -> bool:
    """Whether a full listing should ask this provider what it serves: it lists models and is
    ready (enabled and configured: a provider without its key would only refuse)."""
    from ironspire.views._providers import provider_readiness

    return ws.provider(pid).lists_models and provider_readiness(ws, pid).ready


async def discover(
    ws: Workspace, provider: str | None = None, *, refresh: bool = False, connect_timeout: float | None = None
) -> dict[str, DiscoveryResult | None]:
    """Asks, at once, every provider that lists its models and concerns this listing (``provider``,
    or all worth asking), each at the base URL and with the key a turn would use."""
    import asyncio

    if provider is not None:
        ws.provider(provider)
        asked = [provider]
    else:
        asked = [pid for pid in ws.provider_ids() if worth_asking(ws, pid)]
    jobs = (ws.discover_models(pid, refresh=refresh, connect_timeout=connect_timeout) for pid in asked)
    return dict(zip(asked, await asyncio.gather(*jobs), strict=True))


def listing_problem(ws: Workspace, provider: str, result: DiscoveryResult | None) -> str | None:
    """Why one provider's listing may be short: disabled, or its own error."""
    if not ws.is_enabled(provider):
        return f"{provider} is disabled; enable it with `ironspire providers enable {provider}`."
    return None if result is None else result.error


def why_empty(provider: str | None, registry_has: bool) -> str:
    """Words for an empty listing of one provider (``registry_has``: it has models at all)."""
    if provider is None or registry_has:
        return ""  # the capability filter left nothing: nothing more to explain
    if is_builtin(provider) and not builtin(provider).lists_models:
        return f" ({provider} has no built-in models: it serves the deployment or model id you configure.)"
    return f" ({provider} lists its models at runtime, and listed none.)"


def _builtin_name(pid: str) -> str:
    return builtin(pid).display_name if is_builtin(pid) else pid


def model_price(ws: Workspace, provider: str, model: str) -> ModelPriceView:
    """The price the ledger costs ``provider/model`` at, and its source."""
    from ironspire.views.records import PriceView

    found = ws.price(provider, model)
    if found is None:
        return ModelPriceView(provider, model, None, "unknown")
    price, source = found
    return ModelPriceView(provider, model, PriceView(price.input, price.output, price.cache_read, price.cache_write),
                          source)
