"""``GET {base}/models`` on an OpenAI-compatible endpoint (groq, together, fireworks, custom-*).

Most answer ``{"object": "list", "data": [...]}``; Together answers a bare JSON array (entries
are read by ``catalog.discovery.openai_model_spec``). A 404 means the endpoint is reachable but
does not list models: settled, so the result is cached like a list.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ironspire.catalog.discovery import DiscoveryResult, openai_model_spec
from ironspire.errors import ProviderUnavailable, redact
from ironspire.protocols.base import http_problem
from ironspire.wire import Target, WireRequest

if TYPE_CHECKING:
    from ironspire.transport import Transport


async def list_models(
    transport: Transport, target: Target, *, read_timeout: float, connect_timeout: float
) -> DiscoveryResult:
    provider, base = target.provider.id, target.base_url.rstrip("/")
    api_key = target.secrets.get("api_key")
    headers = {"Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    wire = WireRequest("GET", base + "/models", headers)
    try:
        response = await transport.fetch(wire, target, read_timeout=read_timeout, connect_timeout=connect_timeout)
    except ProviderUnavailable as exc:
        from ironspire.transport import cause_name

        return DiscoveryResult(provider, base, error=f"{provider}: cannot reach {base} ({cause_name(exc)}).",
                               reachable=False)
    status = response.status_code
    secrets = [api_key] if api_key else []
    if status in (401, 403) and not api_key:
        return DiscoveryResult(provider, base, error=f"{provider} wants an API key to list its models (HTTP "
                               f"{status}); set it with `ironspire providers set-key {provider}`.")
    if status in (401, 403):
        return DiscoveryResult(provider, base, error=redact(
            f"{provider} rejected the API key when listing models (HTTP {status}); "
            f"update it with `ironspire providers set-key {provider}`.", secrets))
    if status == 404:
        return DiscoveryResult(provider, base, error=f"{provider} at {base} does not list its models (HTTP 404); "
                               "only configured models are available.", lists_none=True)
    if status != 200:
        return DiscoveryResult(provider, base, error=redact(http_problem(provider, base, status, response.content),
                                                            secrets))
    try:
        data = response.json()
    except ValueError:
        return DiscoveryResult(provider, base, error=f"{provider} at {base} sent an unreadable model list.")
    items = data if isinstance(data, list) else (data.get("data") if isinstance(data, dict) else None)
    specs = [s for s in (openai_model_spec(provider, item) for item in items or ()) if s is not None]
    return DiscoveryResult(provider, base, tuple(specs))
