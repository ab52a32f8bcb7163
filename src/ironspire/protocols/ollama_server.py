"""Where an Ollama server is and which models it has pulled: the Ollama protocol's base-URL rule
and its model listing, kept apart from the chat encoder they have nothing to do with.

``GET /api/tags`` lists the models; recent servers put ``details.context_length`` and
``capabilities`` there, older ones need ``POST /api/show`` per model (parsed by
``catalog.discovery.ollama_spec``). Both go through the workspace's Transport, so they share the
provider's pool and their outcome reaches the health monitor like any request's.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Any

from ironspire.catalog.discovery import DiscoveryResult, ollama_spec
from ironspire.errors import ProviderUnavailable
from ironspire.protocols.base import http_problem
from ironspire.wire import Target, WireRequest

if TYPE_CHECKING:
    from ironspire.catalog.models import ModelSpec
    from ironspire.transport import Transport

DEFAULT_OLLAMA_URL = "http://localhost:11434"
_DEFAULT_PORT = "11434"
_SHOW_CONCURRENCY = 8


def ollama_base_url(configured: str | None = None) -> str:
    """The Ollama server to talk to: the configured URL, else ``OLLAMA_HOST``, else the default.

    ``OLLAMA_HOST`` is read the way Ollama's own client reads it (envconfig.Host): quotes and
    spaces trimmed; no scheme means http and port 11434; an explicit ``http://`` or ``https://``
    without a port means 80 or 443; a bare host or IP gets the default port. The native API lives
    at the server root, so a trailing ``/api`` or ``/v1`` (the OpenAI-compatible path people
    often paste) is removed.
    """
    if configured and configured.strip():
        value = configured.strip()
        url = value if "://" in value else _normalise_host(value)
    else:
        env = os.environ.get("OLLAMA_HOST", "")
        url = _normalise_host(env) if env.strip(" \"'") else DEFAULT_OLLAMA_URL
    url = url.rstrip("/")
    for suffix in ("/api", "/v1"):
        if url.endswith(suffix):
            url = url[: -len(suffix)]
    return url


def _normalise_host(raw: str) -> str:
    value = raw.strip().strip("\"'").strip()
    scheme, sep, rest = value.partition("://")
    default_port = _DEFAULT_PORT
    if not sep:
        scheme, rest = "http", value
    elif scheme == "http":
        default_port = "80"
    elif scheme == "https":
        default_port = "443"
    hostport, slash, path = rest.partition("/")
    path = (slash + path).rstrip("/")
    host, port = _split_host_port(hostport)
    if not host:
        host = "127.0.0.1"
    if not port or not port.isdigit() or not 0 <= int(port) <= 65535:
        port = default_port
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}{path}"


def _split_host_port(hostport: str) -> tuple[str, str]:
    if hostport.startswith("["):
        host, _, tail = hostport[1:].partition("]")
        return host, tail[1:] if tail.startswith(":") else ""
    if hostport.count(":") == 1:
        host, _, port = hostport.partition(":")
        return host, port
    return hostport, ""  # a bare IPv6 address or a plain host


def not_running_message(base_url: str) -> str:
    return f"Ollama is not running at {base_url}; start it with `ollama serve`."


async def list_models(
    transport: Transport, target: Target, *, read_timeout: float, connect_timeout: float
) -> DiscoveryResult:
    """The chat models the server at ``target.base_url`` has pulled; never raises for a server
    that is down or answers badly (the result says so)."""
    from ironspire.transport import cause_name, never_connected

    base = target.base_url
    wire = WireRequest("GET", base + "/api/tags", {})
    try:
        response = await transport.fetch(wire, target, read_timeout=read_timeout, connect_timeout=connect_timeout)
    except ProviderUnavailable as exc:
        if never_connected(exc):
            return DiscoveryResult("ollama", base, error=not_running_message(base), reachable=False)
        return DiscoveryResult("ollama", base, error=f"Ollama at {base} did not answer ({cause_name(exc)}).")
    if response.status_code != 200:
        return DiscoveryResult("ollama", base, error=http_problem("Ollama", base, response.status_code,
                                                                  response.content))
    try:
        listed = response.json().get("models") or []
    except (ValueError, AttributeError):
        return DiscoveryResult("ollama", base, error=f"Ollama at {base} sent an unreadable model list.")
    entries = [m for m in listed if isinstance(m, dict) and (m.get("name") or m.get("model"))]
    limit = asyncio.Semaphore(_SHOW_CONCURRENCY)

    async def describe(entry: dict[str, Any]) -> ModelSpec | None:
        show: dict[str, Any] | None = None
        details = entry.get("details") or {}
        if not (details.get("context_length") and entry.get("capabilities")):
            async with limit:
                show = await _show(transport, target, str(entry.get("name") or entry.get("model")),
                                   read_timeout, connect_timeout)
        return ollama_spec(entry, show)

    specs = await asyncio.gather(*(describe(e) for e in entries))
    return DiscoveryResult("ollama", base, tuple(s for s in specs if s is not None))


async def _show(
    transport: Transport, target: Target, name: str, read_timeout: float, connect_timeout: float
) -> dict[str, Any] | None:
    """/api/show for one model; None when it fails (the model is then described by defaults)."""
    wire = WireRequest("POST", target.base_url + "/api/show", {}, json={"model": name})
    try:
        response = await transport.fetch(wire, target, read_timeout=read_timeout, connect_timeout=connect_timeout)
        if response.status_code != 200:
            return None
        data = response.json()
    except (ProviderUnavailable, ValueError):
        return None
    return data if isinstance(data, dict) else None
