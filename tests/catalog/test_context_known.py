"""Which context windows were reported and which are placeholders (ModelSpec.context_known), and
which discovery answers are cached. /models bodies as in PROTOCOLS.md 8.4 (Groq) and vLLM's."""

from __future__ import annotations

from ironspire.catalog.discovery import DiscoveryCache, ollama_spec, openai_model_spec
from ironspire.catalog.models import Registry, dynamic_model
from support.listing import discover_openai_compatible
from support.ollama_fake import closed_port, serving


def test_builtins_and_reported_windows_are_known_placeholders_are_not() -> None:
    assert all(m.context_known for m in Registry())
    assert dynamic_model("groq", "anything").context_known is False
    assert Registry().get("groq", "anything").context_known is False  # what an unlisted id resolves to
    assert dynamic_model("custom-lab", "m", context_window=4096).context_known is True
    groq = openai_model_spec("groq", {"id": "llama-3.3-70b-versatile", "context_window": 131072, "active": True})
    bare = openai_model_spec("fireworks", {"id": "accounts/fireworks/models/x", "object": "model"})
    assert groq is not None and groq.context_known and groq.context_window == 131072
    assert bare is not None and not bare.context_known
    shown = ollama_spec({"name": "gemma4"}, {"model_info": {"general.architecture": "gemma3",
                                                             "gemma3.context_length": 131072}})
    unshown = ollama_spec({"name": "mystery:latest", "details": {}})
    assert shown is not None and shown.context_known and shown.context_window == 131072
    assert unshown is not None and not unshown.context_known


async def test_a_404_listing_is_cached_a_refused_connection_is_not() -> None:
    cache = DiscoveryCache()
    with serving({}) as server:  # every path answers 404
        first = await discover_openai_compatible("custom-gw", server.url + "/v1", cache=cache)
        again = await discover_openai_compatible("custom-gw", server.url + "/v1", cache=cache)
    assert first.lists_none and not first.ok and "does not list its models" in (first.error or "")
    assert again.cached and again.error == first.error
    assert server.paths() == ["GET /v1/models"]
    url = f"http://127.0.0.1:{closed_port()}/v1"
    down = await discover_openai_compatible("custom-gw", url, cache=cache)
    assert not down.reachable and not down.lists_none
    assert cache.get(("custom-gw", url, "")) is None  # starting the server is noticed next time
