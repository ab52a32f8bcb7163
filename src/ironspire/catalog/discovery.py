"""Runtime model discovery, the data half: results, their cache, and reading what servers list.

Asking the servers is each protocol's job (``Backend.list_models``, through the workspace's
Transport so it uses the pools and updates health; ``ironspire.protocols.listing`` wraps it with
this cache). What is here needs no connection, so the catalogue stays below the protocols.

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
import re
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar

from ironspire.catalog.models import ModelSpec, Price, dynamic_model
from ironspire.catalog.quirks import OllamaModelQuirks

if TYPE_CHECKING:
    from ironspire.catalog.models import Registry

DEFAULT_TTL = 60.0
DEFAULT_TIMEOUT = 10.0
DEFAULT_CONNECT_TIMEOUT = 2.0
CLI_CONNECT_TIMEOUT = 0.5
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


def cache_key(provider: str, base_url: str, api_key: str | None = None) -> tuple[str, str, str]:
    digest = hashlib.sha256(api_key.encode()).hexdigest()[:16] if api_key else ""
    return provider, base_url, digest


async def cached(
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


# --- parsing what servers list ---------------------------------------------------------------

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
    facts: dict[str, Any] = {"price": Price(), "quirks": OllamaModelQuirks()}
    if context:
        facts.update(context_window=context, max_output_tokens=context)
    if caps is not None:
        facts.update(tools="tools" in caps, vision="vision" in caps, reasoning="thinking" in caps)
    if entry.get("remote_host"):
        facts["quirks"] = OllamaModelQuirks(remote=True)
    return dynamic_model("ollama", name, **facts)


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
