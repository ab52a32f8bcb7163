"""Models that providers list at runtime, as an agent meets them: the workspace asks Groq, Fireworks,
custom endpoints and Ollama what they serve (at the configured base URL, with the stored key),
and pre-flight enforces a context window only when somebody reported one, except on Ollama.

The providers are real HTTP servers on 127.0.0.1 (tests/support/http_stub.py, in the test's own
event loop). The /models bodies follow PROTOCOLS.md 8.4 and Groq's docs (context_window, active,
max_completion_tokens); vLLM reports max_model_len; the Fireworks entry carries no size at all.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from ironspire.catalog import discovery
from ironspire.catalog.providers import CustomEndpoint
from ironspire.errors import ConfigurationError, ContextWindowExceeded
from ironspire.workspace import Workspace
from support.http_stub import Reply, StubServer, refused_port

KEY = "gsk_runtime_canary_0123456789abcdef"
GROQ_MODELS = {"object": "list", "data": [
    {"id": "llama-3.3-70b-versatile", "object": "model", "created": 1733447754, "owned_by": "Meta", "active": True,
     "context_window": 131072, "public_apps": None, "max_completion_tokens": 32768},
]}
FIREWORKS_MODELS = {"object": "list", "data": [
    {"id": "accounts/fireworks/models/llama-v3p3-70b-instruct", "object": "model", "owned_by": "fireworks",
     "created": 1733443200},
]}
VLLM_MODELS = {"object": "list", "data": [
    {"id": "Qwen/Qwen3-8B", "object": "model", "created": 1700000001, "owned_by": "vllm", "max_model_len": 32768},
]}
#: about 50,000 tokens by the pre-flight estimate: beyond the 8,192 placeholder, well inside 131,072
LONG = "word " * 40_000


def chat_reply(text: str = "Read it.") -> Reply:
    return Reply(200, {"id": "c1", "object": "chat.completion", "model": "m", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 50012, "completion_tokens": 3, "total_tokens": 50015}})


@pytest.fixture(autouse=True)
def fresh_cache() -> None:
    discovery.CACHE.clear()


def requests(server: StubServer) -> list[str]:
    return [f"{s.method} {s.path}" for s in server.seen]


def on_groq(ws: Workspace, server: StubServer) -> None:
    ws.set_provider_setting("groq", "base_url", server.url + "/openai/v1")
    ws.credentials.set("groq", "api_key", KEY)


# --- Groq: the listed window is the one enforced ----------------------------------------------------


async def test_groq_agent_gets_the_listed_window_not_the_guess(ws: Workspace) -> None:
    routes = {"/openai/v1/models": Reply(200, GROQ_MODELS), "/openai/v1/chat/completions": chat_reply()}
    async with StubServer(routes) as server:
        on_groq(ws, server)
        agent = ws.create_agent("reader", provider="groq", model="llama-3.3-70b-versatile")
        reply = await agent.send(LONG)  # refused before the fix: "about 50,003 tokens but ... holds 8,192"
        await agent.send("And now?")
    assert reply.text == "Read it."
    # listed once (cached for the second turn), at the configured base URL, with the stored key
    assert requests(server) == ["GET /openai/v1/models", "POST /openai/v1/chat/completions",
                                "POST /openai/v1/chat/completions"]
    assert server.seen[0].headers["authorization"] == f"Bearer {KEY}"
    model = agent.target().model
    assert (model.context_window, model.max_output_tokens, model.source, model.context_known) == (
        131072, 32768, "discovered", True)


async def test_a_turn_to_a_listing_provider_reads_the_keychain_once(ws: Workspace,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The listing and the request use the key the turn read once (a second keychain read was a
    trip to a thread on every turn), and a cached listing is not installed again."""
    routes = {"/openai/v1/models": Reply(200, GROQ_MODELS), "/openai/v1/chat/completions": chat_reply()}
    async with StubServer(routes) as server:
        on_groq(ws, server)
        agent = ws.create_agent("reader", provider="groq", model="llama-3.3-70b-versatile")
        await agent.send("First.")
        reads: list[tuple[str, str]] = []
        installs: list[str] = []
        get = ws.credentials.get
        monkeypatch.setattr(ws.credentials, "get", lambda pid, field: (reads.append((pid, field)), get(pid, field))[1])
        monkeypatch.setattr(discovery, "install", lambda registry, result: installs.append(result.provider))
        await agent.send("Second.")
    assert reads == [("groq", "api_key")] and installs == []
    assert [s.headers["authorization"] for s in server.seen] == [f"Bearer {KEY}"] * 3


async def test_groq_history_beyond_the_listed_window_is_refused_before_sending(ws: Workspace) -> None:
    routes = {"/openai/v1/models": Reply(200, GROQ_MODELS), "/openai/v1/chat/completions": chat_reply()}
    async with StubServer(routes) as server:
        on_groq(ws, server)
        agent = ws.create_agent("reader", provider="groq", model="llama-3.3-70b-versatile")
        with pytest.raises(ContextWindowExceeded) as info:
            await agent.send("word " * 120_000)  # about 150,000 tokens
    assert info.value.limit == 131072 and info.value.used is not None and info.value.used > 131072
    assert requests(server) == ["GET /openai/v1/models"]  # nothing was sent, nothing recorded
    assert agent.transcript() == []


# --- a window nobody reported -------------------------------------------------------------------------


async def test_unreported_window_is_not_a_reason_to_refuse(ws: Workspace) -> None:
    """Fireworks lists the model without a size: the 8,192 placeholder must not block a long history.
    The provider's own overflow answer is still the typed error."""
    model_id = "accounts/fireworks/models/llama-v3p3-70b-instruct"
    overflow = Reply(400, {"error": {"message": "This model's maximum context length is 131072 tokens. However, "
                                                "you requested 150000 tokens.", "code": "context_length_exceeded"}})
    replies = iter([chat_reply(), overflow])
    async with StubServer({"/inference/v1/models": Reply(200, FIREWORKS_MODELS)},
                          resolver=lambda seen: next(replies) if seen.method == "POST" else None) as server:
        ws.set_provider_setting("fireworks", "base_url", server.url + "/inference/v1")
        ws.credentials.set("fireworks", "api_key", "fw_runtime_canary_0123456789")
        agent = ws.create_agent("reader", provider="fireworks", model=model_id)
        assert (await agent.send(LONG)).text == "Read it."
        model = agent.target().model
        assert (model.context_window, model.context_known) == (8192, False)
        with pytest.raises(ContextWindowExceeded):
            await agent.send("word " * 120_000)
    assert requests(server) == ["GET /inference/v1/models", "POST /inference/v1/chat/completions",
                                "POST /inference/v1/chat/completions"]
    sent = json.loads(server.seen[1].body)
    assert sent["model"] == model_id and sent["messages"][-1]["content"] == LONG


async def test_ollama_placeholder_window_is_still_enforced(ws: Workspace) -> None:
    """Ollama cuts an over-long history silently, so even its placeholder window is checked."""
    tags = {"models": [{"name": "mystery:latest", "model": "mystery:latest", "size": 1, "details": {}}]}
    async with StubServer({"/api/tags": Reply(200, tags), "/api/show": Reply(500, {"error": "boom"})}) as server:
        ws.set_provider_setting("ollama", "base_url", server.url)
        agent = ws.create_agent("local", provider="ollama", model="mystery")
        with pytest.raises(ContextWindowExceeded) as info:
            await agent.send(LONG)
    assert agent.target().model.context_known is False
    assert info.value.limit == 8192
    assert "POST /api/chat" not in requests(server)


# --- custom endpoints ----------------------------------------------------------------------------------


async def test_custom_endpoint_serves_listed_models_and_configured_ones_need_no_listing(ws: Workspace) -> None:
    routes = {"/v1/models": Reply(200, VLLM_MODELS), "/v1/chat/completions": chat_reply()}
    async with StubServer(routes) as server:
        ws.add_custom_endpoint(CustomEndpoint("Lab", server.url + "/v1", "my-model", context_window=4096))
        configured = ws.create_agent("configured", provider="custom-lab", model="my-model")
        await configured.send("hello")
        assert requests(server) == ["POST /v1/chat/completions"]  # the user's facts: nothing to ask
        served = ws.create_agent("served", provider="custom-lab", model="Qwen/Qwen3-8B")
        await served.send(LONG[: 4 * 20_000])  # 20,000 tokens: over the placeholder, inside max_model_len
    assert requests(server)[1:] == ["GET /v1/models", "POST /v1/chat/completions"]
    assert "authorization" not in server.seen[1].headers  # no key was configured
    assert served.target().model.context_window == 32768
    assert configured.target().model.context_window == 4096  # kept beside what the endpoint lists


async def test_endpoint_that_does_not_list_is_asked_once_not_every_turn(ws: Workspace) -> None:
    async with StubServer({"/v1/chat/completions": chat_reply()}) as server:  # /v1/models answers 404
        ws.add_custom_endpoint(CustomEndpoint("Gateway", server.url + "/v1", "routed"))
        agent = ws.create_agent("a", provider="custom-gateway", model="some-other-model")
        await agent.send("one")
        await agent.send("two")
    assert requests(server) == ["GET /v1/models", "POST /v1/chat/completions", "POST /v1/chat/completions"]


# --- discover_models itself ----------------------------------------------------------------------------


async def test_discover_models_reports_problems_instead_of_raising(ws: Workspace, monkeypatch: Any) -> None:
    url = f"http://127.0.0.1:{refused_port()}/openai/v1"
    ws.set_provider_setting("groq", "base_url", url)
    down = await ws.discover_models("groq")
    assert down is not None and not down.ok and not down.reachable and url in (down.error or "")

    def locked(*args: Any, **kwargs: Any) -> str:
        raise ConfigurationError("the keychain is locked.")

    monkeypatch.setattr(ws.credentials, "get", locked)
    refused = await ws.discover_models("together")
    assert refused is not None and refused.models == () and "keychain is locked" in (refused.error or "")


async def test_only_enabled_providers_that_list_models_are_asked(ws: Workspace) -> None:
    async with StubServer({"/openai/v1/models": Reply(200, GROQ_MODELS)}) as server:
        on_groq(ws, server)
        assert await ws.discover_models("deepseek") is None  # a fixed catalogue
        await ws.disable("groq")
        assert await ws.discover_models("groq") is None
        await ws.enable("groq")
        listed = await ws.discover_models("groq")
    assert listed is not None and [m.id for m in listed.models] == ["llama-3.3-70b-versatile"]
    assert requests(server) == ["GET /openai/v1/models"]
    assert [m.id for m in ws.registry.list(provider="groq")] == ["llama-3.3-70b-versatile"]
