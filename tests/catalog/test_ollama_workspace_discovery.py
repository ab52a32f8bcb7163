"""Discovery wired to the workspace: the Ollama base URL a user sets is where `models list` looks,
and a discovered model's context window is what an agent's pre-flight check enforces.

The Ollama is a real HTTP server on 127.0.0.1 answering /api/tags and /api/show with the
examples of Ollama's own docs (docs/openapi.yaml: gemma4, whose Modelfile sets num_ctx 2048).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from ironspire.catalog import discovery
from ironspire.cli.app import app
from ironspire.errors import ContextWindowExceeded
from ironspire.workspace import Workspace
from support.memory_keyring import MemoryKeyring, use_memory_keyring
from support.ollama_fake import LoopbackServer, closed_port, serving

runner = CliRunner()
CHAT_REPLY = {"model": "gemma4", "created_at": "2025-10-17T23:14:07.414671Z",
              "message": {"role": "assistant", "content": "Hello."}, "done": True, "done_reason": "stop",
              "prompt_eval_count": 12, "eval_count": 3}


@pytest.fixture(autouse=True)
def fresh_cache() -> None:
    discovery.CACHE.clear()


@pytest.fixture
def routes(realdata: Path) -> dict[tuple[str, str], tuple[int, Any]]:
    openapi = yaml.safe_load((realdata / "ollama/ollama__docs__openapi.yaml").read_text(encoding="utf-8"))

    def example(path: str, method: str) -> Any:
        return openapi["paths"][path][method]["responses"]["200"]["content"]["application/json"]["example"]

    return {
        ("GET", "/api/tags"): (200, example("/api/tags", "get")),
        ("POST", "/api/show:gemma4"): (200, example("/api/show", "post")),
        ("POST", "/api/chat"): (200, CHAT_REPLY),
    }


# --- the CLI ---------------------------------------------------------------------------------------


def test_models_list_asks_the_configured_base_url_not_ollama_host(monkeypatch: pytest.MonkeyPatch,
                                                                  routes: Any) -> None:
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{closed_port()}")  # the setting must win over this
    with serving(routes) as server:
        done = runner.invoke(app, ["providers", "set", "ollama", "base_url", server.url])
        assert done.exit_code == 0, done.output
        result = runner.invoke(app, ["models", "list", "--provider", "ollama", "--json"])
    assert result.exit_code == 0, result.output
    models = json.loads(result.stdout)
    assert [(m["id"], m["context_window"]) for m in models] == [("gemma4", 2048)]
    assert server.paths() == ["GET /api/tags", "POST /api/show"]


def test_configured_url_that_is_down_is_named_in_the_message(monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    assert runner.invoke(app, ["providers", "set", "ollama", "base_url", url]).exit_code == 0
    result = runner.invoke(app, ["models", "list", "--provider", "ollama", "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout) == []
    assert f"Ollama is not running at {url}; start it with `ollama serve`." in " ".join(result.stderr.split())


def test_models_list_in_a_subprocess_stays_fast_when_nothing_runs(tmp_path: Path) -> None:
    """The real command, as a user runs it: the workspace is opened and Ollama is not running."""
    env = {k: v for k, v in os.environ.items() if k != "OLLAMA_HOST"}
    env.update(IRONSPIRE_HOME=str(tmp_path / "home"), PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring",
               OLLAMA_HOST=f"127.0.0.1:{closed_port()}")
    command = [sys.executable, "-m", "ironspire.cli", "models", "list", "--provider", "ollama", "--json"]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    elapsed = time.perf_counter() - started
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [] and "ollama serve" in done.stderr
    assert elapsed < 5, elapsed


# --- the workspace ---------------------------------------------------------------------------------


class QuietHealth:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def status(self, pid: str) -> Any:
        return None

    def observe(self, pid: str, error: Any, latency: float) -> None:
        pass

    async def check(self, ids: Any = None) -> dict[str, Any]:
        return {}

    def reset(self, pid: str) -> None:
        pass


@pytest.fixture
def keyring(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[MemoryKeyring]]:
    yield from use_memory_keyring(monkeypatch)


@pytest.fixture
async def ollama_ws(keyring: Any, tmp_path: Path, routes: Any) -> AsyncIterator[tuple[Workspace, LoopbackServer]]:
    with serving(routes) as server:
        ws = Workspace.open(tmp_path / "ws", health=QuietHealth)
        ws.set_provider_setting("ollama", "base_url", server.url)
        try:
            yield ws, server
        finally:
            await ws.aclose()


async def test_agent_uses_the_discovered_context_window(ollama_ws: tuple[Workspace, LoopbackServer]) -> None:
    ws, server = ollama_ws
    agent = ws.create_agent("local", provider="ollama", model="gemma4")
    reply = await agent.send("Say hello.")
    assert reply.text == "Hello."
    assert server.paths() == ["GET /api/tags", "POST /api/show", "POST /api/chat"]
    assert agent.target().model.context_window == 2048  # not the 8192 guessed for unknown models
    await agent.send("Again.")  # the listing is cached: only the chat is asked
    assert server.paths()[3:] == ["POST /api/chat"]


async def test_history_longer_than_the_discovered_window_is_refused_before_sending(
    ollama_ws: tuple[Workspace, LoopbackServer],
) -> None:
    ws, server = ollama_ws
    agent = ws.create_agent("local", provider="ollama", model="gemma4")
    with pytest.raises(ContextWindowExceeded) as info:
        await agent.send("word " * 4000)  # ~5,000 tokens for a 2,048-token window
    err = info.value
    assert err.limit == 2048 and err.used is not None and err.used > 2048
    assert "2,048" in str(err) and f"{err.used:,}" in str(err)
    assert "POST /api/chat" not in server.paths()
    assert agent.history == [] and agent.transcript() == []  # a pre-flight refusal records nothing


async def test_text_the_workspace_estimate_lets_through_is_still_caught_by_the_adapter(
    ollama_ws: tuple[Workspace, LoopbackServer],
) -> None:
    """CJK text is about one token per character: a 4-characters-per-token guess under-counts it,
    so Ollama targets are checked with the adapter's byte-based estimate, before anything is sent
    or recorded."""
    ws, server = ollama_ws
    agent = ws.create_agent("local", provider="ollama", model="gemma4")
    with pytest.raises(ContextWindowExceeded) as info:
        await agent.send("漢" * 3000)
    err = info.value
    assert err.limit == 2048 and err.used is not None and err.used >= 3000
    assert f"about {err.used:,} tokens" in str(err) and "2,048 tokens" in str(err)
    assert "POST /api/chat" not in server.paths()
    assert agent.history == [] and agent.transcript() == []  # refused in pre-flight: nothing recorded


async def test_ollama_down_leaves_the_turn_to_fail_at_the_request(keyring: Any, tmp_path: Path) -> None:
    ws = Workspace.open(tmp_path / "ws", health=QuietHealth)
    url = f"http://127.0.0.1:{closed_port()}"
    ws.set_provider_setting("ollama", "base_url", url)
    try:
        result = await ws.discover_models("ollama")
        assert result is not None and not result.ok and url in (result.error or "")
        assert await ws.discover_models("openai") is None  # only runtime-listing local servers are asked
    finally:
        await ws.aclose()


def test_ollama_host_without_port_means_11434_for_chat_and_discovery(monkeypatch: pytest.MonkeyPatch,
                                                                     keyring: Any, tmp_path: Path) -> None:
    monkeypatch.setenv("OLLAMA_HOST", "gpu-box")
    ws = Workspace.open(tmp_path / "ws", health=QuietHealth)
    try:
        assert ws.target("ollama", "llama3").base_url == "http://gpu-box:11434"
        ws.set_provider_setting("ollama", "base_url", "http://127.0.0.1:11500/v1")  # the compat path, pasted
        assert ws.target("ollama", "llama3").base_url == "http://127.0.0.1:11500"
    finally:
        ws.close()
