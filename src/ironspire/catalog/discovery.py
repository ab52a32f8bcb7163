"""Runtime model discovery: what a local Ollama or an OpenAI-compatible endpoint serves right now.

These providers have no fixed catalogue (a user pulls Ollama models, Groq/Together/Fireworks
add and retire models weekly, a custom endpoint serves whatever was deployed), so their models
are asked for at runtime and installed into the registry beside the built-ins.

Discovery never raises for an endpoint that is down or refuses: the listing must still work,
so the caller gets a ``DiscoveryResult`` with no models and a message saying what is wrong
(for Ollama: not running at URL, start it with ``ollama serve``). Successful answers are cached
in memory for a short time (60 s by default) because the CLI, the web app and every agent turn
(``Workspace.discover_models``, so pre-flight sees the real context window) may all ask within
one interaction; ``refresh=True`` bypasses the cache. Failures are not cached, so starting Ollama
is noticed on the next call; the one exception is an endpoint that answers 404 to ``/models``
(it does not list models, and will not in a minute either), which is cached like a list so that
each turn on it does not pay for the same refusal again.

Ollama: ``GET /api/tags`` lists the models; recent servers put ``details.context_length`` and
``capabilities`` there, older ones need ``POST /api/show`` per model (``model_info`` holds
``"<arch>.context_length"``, ``capabilities`` lists completion/tools/vision/thinking...). The
context window recorded is the one Ollama will actually use: the Modelfile's ``num_ctx`` when it
sets one, else the model's native length. Models whose capabilities lack ``completion``
(embedding models) cannot chat and are left out.

OpenAI-compatible (groq, together, fireworks, custom-*): ``GET {base}/models``, with a bearer key
when one is given. Most answer ``{"object": "list", "data": [...]}``; Together answers a bare
JSON array. Context sizes come from whichever field the provider uses (Groq ``context_window``,
Together ``context_length``, vLLM ``max_model_len``...); Together's per-million prices are kept.
A 404 means the endpoint is reachable but does not list models.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from ironspire.catalog.models import ModelSpec, Price, dynamic_model
from ironspire.catalog.providers import ProviderSpec
from ironspire.errors import redact

if TYPE_CHECKING:
    from ironspire.catalog.models import Registry

DEFAULT_TTL = 60.0
DEFAULT_TIMEOUT = 10.0
DEFAULT_CONNECT_TIMEOUT = 2.0
CLI_CONNECT_TIMEOUT = 0.5
_SHOW_CONCURRENCY = 8
#: Together model types that are not chat models
_NON_CHAT_TYPES = frozenset({"embedding", "image", "moderation", "rerank", "audio", "transcribe", "video"})

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class DiscoveryResult:
    """What one endpoint listed. ``error`` is a message for people when it could not list."""

    provider: str
    base_url: str
    models: tuple[ModelSpec, ...] = ()
    error: str | None = None
    reachable: bool = True
    cached: bool = False
    lists_none: bool = False
    """The endpoint answered that it does not list models (404): settled, so cached too."""

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class DiscoveryCache:
    """Successful results per (provider, base URL, key digest), kept for ``ttl`` seconds."""

    ttl: float = DEFAULT_TTL
    clock: Callable[[], float] = time.monotonic
    _entries: dict[tuple[str, str, str], tuple[float, DiscoveryResult]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, key: tuple[str, str, str]) -> DiscoveryResult | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if self.clock() >= entry[0]:
                del self._entries[key]
                return None
            return replace(entry[1], cached=True)

    def put(self, key: tuple[str, str, str], result: DiscoveryResult) -> None:
        if result.ok or result.lists_none:
            with self._lock:
                self._entries[key] = (self.clock() + self.ttl, result)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def forget(self, provider: str) -> None:
        """Drops one provider's results (it was disabled or re-enabled: list afresh)."""
        with self._lock:
            for key in [k for k in self._entries if k[0] == provider]:
                del self._entries[key]


CACHE = DiscoveryCache()


def _key(provider: str, base_url: str, api_key: str | None = None) -> tuple[str, str, str]:
    digest = hashlib.sha256(api_key.encode()).hexdigest()[:16] if api_key else ""
    return provider, base_url, digest


def _client(timeout: float, connect_timeout: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=connect_timeout), trust_env=False)


async def _cached(
    key: tuple[str, str, str],
    refresh: bool,
    cache: DiscoveryCache | None,
    fetch: Callable[[], Awaitable[DiscoveryResult]],
) -> DiscoveryResult:
    cache = CACHE if cache is None else cache
    if not refresh:
        hit = cache.get(key)
        if hit is not None:
            return hit
    result = await fetch()
    cache.put(key, result)
    return result


# --- Ollama ----------------------------------------------------------------------------------

DEFAULT_OLLAMA_URL = "http://localhost:11434"
_DEFAULT_PORT = "11434"


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


async def discover_ollama(
    base_url: str | None = None,
    *,
    refresh: bool = False,
    cache: DiscoveryCache | None = None,
    read_timeout: float = DEFAULT_TIMEOUT,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    client: httpx.AsyncClient | None = None,
) -> DiscoveryResult:
    """The chat models a local (or remote) Ollama server has pulled."""
    base = ollama_base_url(base_url)

    async def fetch() -> DiscoveryResult:
        async with _borrow(client, read_timeout, connect_timeout) as http:
            return await _ollama(http, base)

    return await _cached(_key("ollama", base), refresh, cache, fetch)


async def _ollama(http: httpx.AsyncClient, base: str) -> DiscoveryResult:
    try:
        response = await http.get(base + "/api/tags")
    except (httpx.ConnectError, httpx.ConnectTimeout):
        return DiscoveryResult("ollama", base, error=not_running_message(base), reachable=False)
    except httpx.TransportError as exc:
        return DiscoveryResult("ollama", base, error=f"Ollama at {base} did not answer ({type(exc).__name__}).")
    if response.status_code != 200:
        return DiscoveryResult("ollama", base, error=_http_problem("Ollama", base, response))
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
                show = await _show(http, base, str(entry.get("name") or entry.get("model")))
        return ollama_spec(entry, show)

    specs = await asyncio.gather(*(describe(e) for e in entries))
    return DiscoveryResult("ollama", base, tuple(s for s in specs if s is not None))


async def _show(http: httpx.AsyncClient, base: str, name: str) -> dict[str, Any] | None:
    """/api/show for one model; None when it fails (the model is then described by defaults)."""
    try:
        response = await http.post(base + "/api/show", json={"model": name})
        if response.status_code != 200:
            return None
        data = response.json()
    except (httpx.HTTPError, ValueError):
        return None
    return data if isinstance(data, dict) else None


_NUM_CTX = re.compile(r"(?m)^\s*num_ctx\s+(\d+)\s*$")


def ollama_spec(entry: Mapping[str, Any], show: Mapping[str, Any] | None = None) -> ModelSpec | None:
    """A ModelSpec from an /api/tags entry and, optionally, the model's /api/show answer."""
    name = str(entry.get("name") or entry.get("model"))
    details = {**(entry.get("details") or {}), **((show or {}).get("details") or {})}
    capabilities = entry.get("capabilities") or (show or {}).get("capabilities")
    caps = {str(c) for c in capabilities} if capabilities else None
    if caps is not None and "completion" not in caps:
        return None
    context = _int(details.get("context_length"))
    if show is not None:
        info = show.get("model_info") or {}
        arch = info.get("general.architecture")
        native = _int(info.get(f"{arch}.context_length")) if arch else None
        context = context or native
        match = _NUM_CTX.search(str(show.get("parameters") or ""))
        if match and (context is None or int(match.group(1)) < context):
            context = int(match.group(1))
    facts: dict[str, Any] = {"price": Price(), "quirks": frozenset({"ollama"})}
    if context:
        facts.update(context_window=context, max_output_tokens=context)
    if caps is not None:
        facts.update(tools="tools" in caps, vision="vision" in caps, reasoning="thinking" in caps)
    if entry.get("remote_host"):
        facts["quirks"] = frozenset({"ollama", "remote"})
    return dynamic_model("ollama", name, **facts)


# --- OpenAI-compatible -----------------------------------------------------------------------


async def discover_openai_compatible(
    provider: str,
    base_url: str,
    api_key: str | None = None,
    *,
    refresh: bool = False,
    cache: DiscoveryCache | None = None,
    read_timeout: float = DEFAULT_TIMEOUT,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    client: httpx.AsyncClient | None = None,
) -> DiscoveryResult:
    """``GET {base}/models`` on an OpenAI-compatible endpoint (groq, together, fireworks, custom-*)."""
    base = base_url.rstrip("/")

    async def fetch() -> DiscoveryResult:
        async with _borrow(client, read_timeout, connect_timeout) as http:
            return await _openai_models(http, provider, base, api_key)

    return await _cached(_key(provider, base, api_key), refresh, cache, fetch)


async def _openai_models(http: httpx.AsyncClient, provider: str, base: str, api_key: str | None) -> DiscoveryResult:
    headers = {"Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    try:
        response = await http.get(base + "/models", headers=headers)
    except httpx.TransportError as exc:
        return DiscoveryResult(provider, base, error=f"{provider}: cannot reach {base} ({type(exc).__name__}).",
                               reachable=False)
    secrets = [api_key] if api_key else []
    if response.status_code in (401, 403) and not api_key:
        return DiscoveryResult(provider, base, error=f"{provider} wants an API key to list its models (HTTP "
                               f"{response.status_code}); set it with `ironspire providers set-key {provider}`.")
    if response.status_code in (401, 403):
        return DiscoveryResult(provider, base, error=redact(
            f"{provider} rejected the API key when listing models (HTTP {response.status_code}); "
            f"update it with `ironspire providers set-key {provider}`.", secrets))
    if response.status_code == 404:
        return DiscoveryResult(provider, base, error=f"{provider} at {base} does not list its models (HTTP 404); "
                               "only configured models are available.", lists_none=True)
    if response.status_code != 200:
        return DiscoveryResult(provider, base, error=redact(_http_problem(provider, base, response), secrets))
    try:
        data = response.json()
    except ValueError:
        return DiscoveryResult(provider, base, error=f"{provider} at {base} sent an unreadable model list.")
    items = data if isinstance(data, list) else (data.get("data") if isinstance(data, dict) else None)
    specs = [s for s in (openai_model_spec(provider, item) for item in items or ()) if s is not None]
    return DiscoveryResult(provider, base, tuple(specs))


_CONTEXT_FIELDS = ("context_window", "context_length", "max_context_length", "max_model_len", "max_input_tokens")
_OUTPUT_FIELDS = ("max_completion_tokens", "max_output_tokens", "max_tokens")


def openai_model_spec(provider: str, item: Any) -> ModelSpec | None:
    """A ModelSpec from one ``/models`` entry, using whichever fields the provider sends."""
    if not isinstance(item, dict) or not item.get("id"):
        return None
    if item.get("active") is False or str(item.get("type", "")).lower() in _NON_CHAT_TYPES:
        return None
    facts: dict[str, Any] = {}
    context = next((v for v in (_int(item.get(f)) for f in _CONTEXT_FIELDS) if v), None)
    if context:
        facts["context_window"] = context
    output = next((v for v in (_int(item.get(f)) for f in _OUTPUT_FIELDS) if v), None)
    if output:
        facts["max_output_tokens"] = output
    elif context:
        facts["max_output_tokens"] = min(context, 4_096)
    if item.get("display_name"):
        facts["display_name"] = str(item["display_name"])
    pricing = item.get("pricing")
    if isinstance(pricing, dict):
        price_in, price_out = _float(pricing.get("input")), _float(pricing.get("output"))
        if price_in is not None or price_out is not None:
            facts["price"] = Price(input=price_in or 0.0, output=price_out or 0.0)
    return dynamic_model(provider, str(item["id"]), **facts)


# --- registry, dispatch ---------------------------------------------------------------------


def install(registry: Registry, result: DiscoveryResult) -> None:
    """Puts a discovery result into the registry; models configured by the user are kept."""
    configured = [m for m in registry.list(provider=result.provider) if m.source == "configured"]
    taken = {m.id for m in configured}
    registry.replace_runtime(result.provider, [*(m for m in result.models if m.id not in taken), *configured])


async def discover(
    spec: ProviderSpec,
    base_url: str | None = None,
    api_key: str | None = None,
    *,
    refresh: bool = False,
    cache: DiscoveryCache | None = None,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
) -> DiscoveryResult:
    """Discovery for any provider that lists its models at runtime, by its protocol."""
    if spec.protocol == "ollama_chat":
        return await discover_ollama(base_url, refresh=refresh, cache=cache, connect_timeout=connect_timeout)
    if spec.protocol == "openai_chat" and spec.lists_models:
        return await discover_openai_compatible(spec.id, base_url or spec.base_url, api_key, refresh=refresh,
                                                cache=cache, connect_timeout=connect_timeout)
    return DiscoveryResult(spec.id, base_url or spec.base_url, error=f"{spec.id} does not list models at runtime.")


def run_sync(make: Callable[[], Awaitable[T]]) -> T:
    """Runs a coroutine from synchronous code (the CLI), also when an event loop is running."""
    async def main() -> T:
        return await make()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    box: list[T] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            box.append(asyncio.run(main()))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return box[0]


# --- helpers ---------------------------------------------------------------------------------


class _borrow:
    """The given client (left open), or a short-lived one closed afterwards."""

    def __init__(self, client: httpx.AsyncClient | None, timeout: float, connect_timeout: float) -> None:
        self._given = client
        self._owned: httpx.AsyncClient | None = None
        self._timeout, self._connect = timeout, connect_timeout

    async def __aenter__(self) -> httpx.AsyncClient:
        if self._given is not None:
            return self._given
        self._owned = _client(self._timeout, self._connect)
        return self._owned

    async def __aexit__(self, *exc: object) -> None:
        if self._owned is not None:
            await self._owned.aclose()


def _http_problem(who: str, base: str, response: httpx.Response) -> str:
    from ironspire.transport import error_message

    message, _, _ = error_message(response.content)
    return f"{who} at {base} could not list models (HTTP {response.status_code}): {message[:200]}"


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if isinstance(value, float) and value.is_integer() and value > 0:
        return int(value)
    if isinstance(value, str) and value.isdigit():
        return int(value) or None
    return None


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
