"""`ironspire models list` shows what a running Ollama serves, and says how to start one that is not.

The Ollama here is a real HTTP server on 127.0.0.1 answering /api/tags and /api/show with the
bodies of Ollama's own docs (docs/openapi.yaml examples); OLLAMA_HOST points the CLI at it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from ironspire.catalog import discovery
from ironspire.cli.app import app
from support.ollama_fake import closed_port, serving

runner = CliRunner()


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
    }


def test_models_list_provider_ollama_json_lists_discovered_models(
    monkeypatch: pytest.MonkeyPatch, routes: Any
) -> None:
    with serving(routes) as server:
        monkeypatch.setenv("OLLAMA_HOST", server.url)
        result = runner.invoke(app, ["models", "list", "--provider", "ollama", "--json"])
    assert result.exit_code == 0, result.output
    models = json.loads(result.stdout)
    assert [(m["provider"], m["id"], m["source"]) for m in models] == [("ollama", "gemma4", "discovered")]
    [gemma] = models
    assert gemma["vision"] is True and gemma["tools"] is False
    assert gemma["context_window"] == 2048  # the Modelfile's num_ctx in the docs' /api/show example
    assert gemma["price"] == {"input": 0.0, "output": 0.0, "cache_read": 0.0, "cache_write": 0.0}
    assert server.paths() == ["GET /api/tags", "POST /api/show"]
    assert result.stderr == ""


def test_full_listing_includes_discovered_ollama_models_beside_builtins(
    monkeypatch: pytest.MonkeyPatch, routes: Any
) -> None:
    with serving(routes) as server:
        monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{server.port}")  # Ollama's own scheme-less form
        result = runner.invoke(app, ["models", "list", "--json"])
    models = json.loads(result.stdout)
    assert sum(m["source"] == "builtin" for m in models) == 46
    assert [m["key"] for m in models if m["provider"] == "ollama"] == ["ollama/gemma4"]


def test_other_providers_do_not_ask_ollama(monkeypatch: pytest.MonkeyPatch, routes: Any) -> None:
    with serving(routes) as server:
        monkeypatch.setenv("OLLAMA_HOST", server.url)
        result = runner.invoke(app, ["models", "list", "--provider", "deepseek", "--json"])
    assert result.exit_code == 0
    assert server.requests == []


def test_ollama_not_running_gives_empty_list_and_how_to_start_it(monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("OLLAMA_HOST", url)
    started = time.perf_counter()
    result = runner.invoke(app, ["models", "list", "--provider", "ollama", "--json"])
    elapsed = time.perf_counter() - started
    assert result.exit_code == 0
    assert json.loads(result.stdout) == []
    assert f"Ollama is not running at {url}; start it with `ollama serve`." in " ".join(result.stderr.split())
    assert elapsed < 3  # the built-in listing is not held up


def test_full_listing_stays_quiet_and_quick_when_ollama_is_not_running(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{closed_port()}")
    started = time.perf_counter()
    result = runner.invoke(app, ["models", "list", "--json"])
    assert time.perf_counter() - started < 3
    assert result.stderr == ""
    assert len(json.loads(result.stdout)) == 46


def test_refresh_flag_asks_again(monkeypatch: pytest.MonkeyPatch, routes: Any) -> None:
    with serving(routes) as server:
        monkeypatch.setenv("OLLAMA_HOST", server.url)
        runner.invoke(app, ["models", "list", "--provider", "ollama", "--json"])
        runner.invoke(app, ["models", "list", "--provider", "ollama", "--json"])  # cached within the TTL
        assert server.paths().count("GET /api/tags") == 1
        runner.invoke(app, ["models", "list", "--provider", "ollama", "--json", "--refresh"])
        assert server.paths().count("GET /api/tags") == 2
