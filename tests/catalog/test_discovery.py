"""Runtime discovery against real loopback HTTP servers answering as Ollama and OpenAI-compatible
providers do. Ollama bodies come from its docs (docs/api.md and docs/openapi.yaml examples, not
recorded traffic: realdata has no recorded /api/tags or /api/show); the /models bodies follow
PROTOCOLS.md 0.5 and 8.4/8.5 (OpenAI list shape, Groq's context_window/active, Together's bare array)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from ironspire.catalog import discovery
from ironspire.catalog.discovery import DiscoveryCache, install
from ironspire.catalog.models import ModelSpec, Price, Registry, dynamic_model
from ironspire.catalog.providers import CustomEndpoint, builtin
from ironspire.catalog.quirks import OllamaModelQuirks
from ironspire.protocols.ollama_server import not_running_message
from support.listing import discover, discover_ollama, discover_openai_compatible
from support.ollama_fake import closed_port, serving

# --- Ollama bodies from the docs -------------------------------------------------------------


def _api_md(realdata: Path) -> str:
    return (realdata / "ollama/ollama__docs__api.md").read_text(encoding="utf-8")


def _between(text: str, start: str, end: str) -> str:
    i = text.index(start)
    return text[i : text.index(end, i)]


def docs_tags(realdata: Path) -> list[dict[str, Any]]:
    """docs/api.md "List Local Models" (deepseek-r1, llama3.2) + openapi.yaml's /api/tags (gemma4)."""
    md = _between(_api_md(realdata), "## List Local Models", "## Show Model Information")
    listed = json.loads(re.search(r"```json\n(.*?)```", md, re.S).group(1))["models"]  # type: ignore[union-attr]
    openapi = yaml.safe_load((realdata / "ollama/ollama__docs__openapi.yaml").read_text(encoding="utf-8"))
    example = openapi["paths"]["/api/tags"]["get"]["responses"]["200"]["content"]["application/json"]["example"]
    return [*listed, *example["models"]]


def docs_show_gemma4(realdata: Path) -> dict[str, Any]:
    openapi = yaml.safe_load((realdata / "ollama/ollama__docs__openapi.yaml").read_text(encoding="utf-8"))
    body: dict[str, Any] = (
        openapi["paths"]["/api/show"]["post"]["responses"]["200"]["content"]["application/json"]["example"]
    )
    return body


def docs_show_llama_arch(realdata: Path) -> dict[str, Any]:
    """docs/api.md's /api/show example (written for llava, a llama-architecture model) in JSON5;
    YAML flow syntax reads it once the // comments are gone."""
    md = _between(_api_md(realdata), "## Show Model Information", "## Copy a Model")
    block = re.search(r"```json5\n(.*?)```", md, re.S).group(1)  # type: ignore[union-attr]
    body: dict[str, Any] = yaml.safe_load(re.sub(r"//[^\n]*", "", block))
    return body


@pytest.fixture
def docs_ollama(realdata: Path) -> dict[tuple[str, str], tuple[int, Any]]:
    return {
        ("GET", "/api/tags"): (200, {"models": docs_tags(realdata)}),
        ("POST", "/api/show:gemma4"): (200, docs_show_gemma4(realdata)),
        ("POST", "/api/show:llama3.2:latest"): (200, docs_show_llama_arch(realdata)),
        # source: server/routes.go answers an unknown model with 404 and this text
        ("POST", "/api/show:deepseek-r1:latest"): (404, {"error": 'model "deepseek-r1:latest" not found'}),
    }


def by_id(models: tuple[ModelSpec, ...] | list[ModelSpec]) -> dict[str, ModelSpec]:
    return {m.id: m for m in models}


# --- Ollama ----------------------------------------------------------------------------------


async def test_ollama_tags_and_show_from_the_docs(docs_ollama: Any) -> None:
    with serving(docs_ollama) as server:
        result = await discover_ollama(server.url, cache=DiscoveryCache())
    assert result.ok and result.reachable and result.base_url == server.url
    models = by_id(result.models)
    assert sorted(models) == ["deepseek-r1:latest", "gemma4", "llama3.2:latest"]
    assert all(m.provider == "ollama" and m.source == "discovered" and m.price == Price() for m in models.values())

    gemma = models["gemma4"]  # model_info gemma4.context_length 131072, but parameters say num_ctx 2048
    assert gemma.context_window == 2048
    assert (gemma.vision, gemma.tools, gemma.reasoning) == (True, False, False)

    llama = models["llama3.2:latest"]  # "llama.context_length": 8192, capabilities completion + vision
    assert llama.context_window == 8192
    assert (llama.vision, llama.tools) == (True, False)

    deepseek = models["deepseek-r1:latest"]  # /api/show failed: described conservatively, still listed
    assert deepseek == dynamic_model("ollama", "deepseek-r1:latest", price=Price(), quirks=OllamaModelQuirks())

    shows = sorted(r.body["model"] for r in server.requests if r.path == "/api/show")
    assert shows == ["deepseek-r1:latest", "gemma4", "llama3.2:latest"]


async def test_newer_servers_need_no_show_calls_and_embedders_are_left_out() -> None:
    # Recent servers put context_length and capabilities in /api/tags (PROTOCOLS.md 5.4)
    tags = {"models": [
        {"name": "qwen3:8b", "model": "qwen3:8b", "details": {"family": "qwen3", "context_length": 40960},
         "capabilities": ["completion", "tools", "thinking"]},
        {"name": "nomic-embed-text:latest", "model": "nomic-embed-text:latest",
         "details": {"family": "nomic-bert", "context_length": 2048}, "capabilities": ["embedding"]},
    ]}
    with serving({("GET", "/api/tags"): (200, tags)}) as server:
        result = await discover_ollama(server.url, cache=DiscoveryCache())
    [qwen] = result.models
    assert (qwen.id, qwen.context_window, qwen.tools, qwen.reasoning, qwen.vision) == (
        "qwen3:8b", 40960, True, True, False)
    assert server.paths() == ["GET /api/tags"]


async def test_cache_serves_a_second_call_and_refresh_bypasses_it(docs_ollama: Any) -> None:
    now = [1000.0]
    cache = DiscoveryCache(ttl=60.0, clock=lambda: now[0])
    with serving(docs_ollama) as server:
        first = await discover_ollama(server.url, cache=cache)
        asked = len(server.requests)
        second = await discover_ollama(server.url, cache=cache)
        assert len(server.requests) == asked  # no request at all
        assert second.cached and second.models == first.models

        await discover_ollama(server.url, cache=cache, refresh=True)
        assert server.paths()[asked] == "GET /api/tags"
        asked = len(server.requests)

        now[0] += 61  # past the TTL
        await discover_ollama(server.url, cache=cache)
        assert len(server.requests) > asked


async def test_unreachable_ollama_gives_an_empty_list_and_says_how_to_start_it() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    cache = DiscoveryCache()
    result = await discover_ollama(url, cache=cache)
    assert result.models == () and not result.reachable
    assert result.error == f"Ollama is not running at {url}; start it with `ollama serve`."
    assert result.error == not_running_message(url)
    assert cache.get(("ollama", url, "")) is None  # a failure is not cached: `ollama serve` is seen at once

    registry = Registry()
    registry.register(dynamic_model("ollama", "stale:latest"))
    install(registry, result)
    assert registry.list(provider="ollama") == []


async def test_ollama_failing_to_list_is_reported_not_raised() -> None:
    with serving({("GET", "/api/tags"): (500, {"error": "something broke"})}) as server:
        result = await discover_ollama(server.url, cache=DiscoveryCache())
    assert result.models == () and result.reachable
    assert result.error is not None and "HTTP 500" in result.error and "something broke" in result.error


async def test_ollama_host_is_used_when_no_url_is_given(monkeypatch: pytest.MonkeyPatch, docs_ollama: Any) -> None:
    with serving(docs_ollama) as server:
        monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{server.port}")  # no scheme, as people write it
        result = await discover_ollama(cache=DiscoveryCache())
    assert result.base_url == server.url and len(result.models) == 3


# --- OpenAI-compatible /models ---------------------------------------------------------------

OPENAI_LIST = {"object": "list", "data": [
    {"id": "my-model", "object": "model", "created": 1700000000, "owned_by": "me"},
    {"id": "Qwen/Qwen3-8B", "object": "model", "created": 1700000001, "owned_by": "vllm", "max_model_len": 32768},
]}
GROQ_LIST = {"object": "list", "data": [
    {"id": "llama-3.3-70b-versatile", "object": "model", "created": 1733447754, "owned_by": "Meta", "active": True,
     "context_window": 131072, "public_apps": None, "max_completion_tokens": 32768},
    {"id": "retired-model", "object": "model", "created": 1, "owned_by": "x", "active": False,
     "context_window": 8192, "public_apps": None},
]}
TOGETHER_LIST = [
    {"id": "meta-llama/Llama-3.3-70B-Instruct-Turbo", "object": "model", "created": 1733443200, "type": "chat",
     "display_name": "Meta Llama 3.3 70B Instruct Turbo", "organization": "Meta", "link": "", "license": "",
     "context_length": 131072, "pricing": {"hourly": 0, "input": 0.88, "output": 0.88, "base": 0, "finetune": 0}},
    {"id": "BAAI/bge-large-en-v1.5", "object": "model", "created": 0, "type": "embedding",
     "display_name": "BGE large", "context_length": 512, "pricing": {"input": 0.02, "output": 0}},
]


async def test_openai_list_shape_with_bearer_key() -> None:
    with serving({("GET", "/v1/models"): (200, OPENAI_LIST)}) as server:
        result = await discover_openai_compatible("custom-lab", server.url + "/v1/", "sk-lab-0123456789",
                                                  cache=DiscoveryCache())
    assert server.requests[0].headers["authorization"] == "Bearer sk-lab-0123456789"
    models = by_id(result.models)
    assert sorted(models) == ["Qwen/Qwen3-8B", "my-model"]
    assert models["Qwen/Qwen3-8B"].context_window == 32768
    assert models["my-model"] == dynamic_model("custom-lab", "my-model")  # nothing known: conservative defaults


async def test_groq_shape() -> None:
    with serving({("GET", "/openai/v1/models"): (200, GROQ_LIST)}) as server:
        result = await discover(builtin("groq"), server.url + "/openai/v1", "gsk_test_0123456789",
                                cache=DiscoveryCache())
    [model] = result.models  # the inactive one is left out
    assert (model.provider, model.id, model.context_window, model.max_output_tokens) == (
        "groq", "llama-3.3-70b-versatile", 131072, 32768)


async def test_together_bare_array() -> None:
    with serving({("GET", "/v1/models"): (200, TOGETHER_LIST)}) as server:
        result = await discover(builtin("together"), server.url + "/v1", "tg-key", cache=DiscoveryCache())
    [model] = result.models  # the embedding model cannot chat
    assert model.id == "meta-llama/Llama-3.3-70B-Instruct-Turbo"
    assert model.display_name == "Meta Llama 3.3 70B Instruct Turbo"
    assert model.context_window == 131072
    assert model.price == Price(input=0.88, output=0.88)


async def test_no_key_means_no_authorization_header_and_cache_is_per_key() -> None:
    cache = DiscoveryCache()
    with serving({("GET", "/v1/models"): (200, OPENAI_LIST)}) as server:
        await discover_openai_compatible("custom-local", server.url + "/v1", None, cache=cache)
        await discover_openai_compatible("custom-local", server.url + "/v1", None, cache=cache)
        await discover_openai_compatible("custom-local", server.url + "/v1", "other-key", cache=cache)
    assert "authorization" not in server.requests[0].headers
    assert len(server.requests) == 2


async def test_rejected_key_and_missing_listing_are_messages_not_crashes() -> None:
    routes = {("GET", "/bad/models"): (401, {"error": {"message": "Invalid API Key sk-lab-0123456789"}}),
              ("GET", "/none/models"): (404, {"detail": "Not Found"})}
    with serving(routes) as server:
        denied = await discover_openai_compatible("custom-lab", server.url + "/bad", "sk-lab-0123456789",
                                                  cache=DiscoveryCache())
        absent = await discover_openai_compatible("custom-lab", server.url + "/none", None, cache=DiscoveryCache())
    assert denied.models == () and denied.error is not None
    assert "providers set-key custom-lab" in denied.error and "sk-lab-0123456789" not in denied.error
    assert absent.reachable and absent.models == () and "does not list its models" in (absent.error or "")


async def test_install_keeps_models_the_user_configured() -> None:
    endpoint = CustomEndpoint("Lab", "http://127.0.0.1:1/v1", "my-model", context_window=65536)
    registry = Registry()
    configured = dynamic_model(endpoint.provider_id, "my-model", context_window=65536, source="configured")
    registry.register(configured)
    with serving({("GET", "/v1/models"): (200, OPENAI_LIST)}) as server:
        result = await discover(endpoint.spec(), server.url + "/v1", cache=DiscoveryCache())
    install(registry, result)
    models = by_id(registry.list(provider="custom-lab"))
    assert models["my-model"] == configured  # the user's facts win over the endpoint's bare id
    assert models["Qwen/Qwen3-8B"].source == "discovered"


async def test_providers_without_runtime_listing_are_declined() -> None:
    result = await discover(builtin("claude-api"), cache=DiscoveryCache())
    assert result.models == () and "does not list models" in (result.error or "")


def test_sync_wrapper_works_inside_a_running_loop() -> None:
    import asyncio

    async def inner() -> int:
        return discovery.run_sync(lambda: asyncio.sleep(0, result=42))

    assert asyncio.run(inner()) == 42
    assert discovery.run_sync(lambda: asyncio.sleep(0, result=7)) == 7
