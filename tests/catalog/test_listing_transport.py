"""Discovery goes through the workspace's Transport: the listing warms the provider's pool, and
what it learns (answered, refused the key, not running) reaches the transport's observers, which
is how the health monitor hears of it. Real loopback servers; a closed port for "not running"."""

from __future__ import annotations

import httpx2

from ironspire.catalog.discovery import DiscoveryCache
from ironspire.catalog.providers import builtin
from ironspire.errors import AuthenticationError, ProviderError, ProviderUnavailable
from ironspire.http import through
from ironspire.protocols.listing import discover, discover_ollama
from ironspire.transport import Transport
from support.ollama_fake import closed_port, serving


def observed(transport: Transport) -> list[tuple[str, ProviderError | None]]:
    seen: list[tuple[str, ProviderError | None]] = []
    transport.observers.append(lambda pid, error, latency: seen.append((pid, error)))
    return seen


async def test_a_listing_uses_the_providers_pool_and_is_observed() -> None:
    listing = {"object": "list", "data": [{"id": "served-model", "context_window": 8192}]}
    async with Transport() as transport:
        seen = observed(transport)
        with serving({("GET", "/openai/v1/models"): (200, listing)}) as server:
            result = await discover(builtin("groq"), server.url + "/openai/v1", "gsk_listing_0001",
                                    transport=transport, cache=DiscoveryCache())
        assert result.ok and [m.id for m in result.models] == ["served-model"]
        assert transport.has_pool("groq")  # the pool a turn to groq will use, already warm
        assert seen == [("groq", None)]


async def test_a_refused_key_and_a_server_that_is_not_running_reach_the_observers() -> None:
    async with Transport() as transport:
        seen = observed(transport)
        with serving({("GET", "/v1/models"): (401, {"error": {"message": "bad key"}})}) as server:
            refused = await discover(builtin("together"), server.url + "/v1", "tg-wrong",
                                     transport=transport, cache=DiscoveryCache())
        down = await discover_ollama(f"http://127.0.0.1:{closed_port()}", transport=transport,
                                     cache=DiscoveryCache())
    assert not refused.ok and "rejected the API key" in (refused.error or "")
    assert not down.reachable and "ollama serve" in (down.error or "")
    assert [pid for pid, _ in seen] == ["together", "ollama"]
    assert isinstance(seen[0][1], AuthenticationError) and isinstance(seen[1][1], ProviderUnavailable)


async def test_the_byte_moving_seam_is_injected_not_subclassed() -> None:
    asked: list[str] = []

    def answer(request: httpx2.Request) -> httpx2.Response:
        asked.append(f"{request.method} {request.url.path}")
        return httpx2.Response(200, json={"models": [{"name": "llama3.2:latest", "capabilities": ["completion"],
                                                     "details": {"context_length": 4096}}]})

    async with Transport(http=through(lambda pid: httpx2.MockTransport(answer))) as transport:
        result = await discover_ollama("http://ollama.invalid:11434", transport=transport, cache=DiscoveryCache())
    assert asked == ["GET /api/tags"]
    assert [(m.id, m.context_window) for m in result.models] == [("llama3.2:latest", 4096)]


async def test_a_turn_after_a_listing_keeps_its_own_timeouts() -> None:
    """The listing opens the pool with its short limits; the turn that follows must not inherit them."""
    from ironspire.catalog.models import dynamic_model
    from ironspire.wire import Secrets, Target, WireRequest

    limits: list[tuple[str, float | None, float | None]] = []

    def answer(request: httpx2.Request) -> httpx2.Response:
        timeout = request.extensions["timeout"]
        limits.append((request.url.path, timeout["read"], timeout["connect"]))
        return httpx2.Response(200, json={"object": "list", "data": []})

    async with Transport(http=through(httpx2.MockTransport(answer))) as transport:
        await discover(builtin("groq"), "http://groq.invalid/openai/v1", "gsk_0001", transport=transport,
                       cache=DiscoveryCache(), read_timeout=3.0, connect_timeout=0.5)
        turn = Target(builtin("groq"), dynamic_model("groq", "m"), "http://groq.invalid/openai/v1",
                      Secrets({"api_key": "gsk_0001"}), timeout=120.0, connect_timeout=10.0)
        await transport.request(WireRequest("POST", turn.url("/chat/completions"), {}, json={}), turn)
    assert limits == [("/openai/v1/models", 3.0, 0.5), ("/openai/v1/chat/completions", 120.0, 10.0)]
