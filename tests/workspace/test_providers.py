"""Provider management the CLI and web app rely on: ids, targets, settings, enable/disable, custom endpoints."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import pytest

from ironspire.catalog.providers import BUILTIN_PROVIDERS, CustomEndpoint
from ironspire.errors import ConfigurationError, ModelNotFound
from ironspire.workspace import Workspace
from support.postgres import dump_url


def test_provider_ids_are_builtins_in_catalogue_order_then_custom(ws: Workspace) -> None:
    ws.add_custom_endpoint(CustomEndpoint("Lab vLLM", "http://127.0.0.1:9/v1", "llama-3"))
    ids = ws.provider_ids()
    assert ids[: len(BUILTIN_PROVIDERS)] == [p.id for p in BUILTIN_PROVIDERS]
    assert ids[-1] == "custom-lab-vllm"
    assert ws.provider("custom-lab-vllm").base_url == "http://127.0.0.1:9/v1"
    with pytest.raises(ConfigurationError, match="custom-nope"):
        ws.provider("custom-nope")
    with pytest.raises(ConfigurationError, match="Did you mean openai"):
        ws.provider("opnai")


def test_target_model_choice(ws: Workspace) -> None:
    assert ws.target("openai", "gpt-4.1").model.id == "gpt-4.1"
    # no default for this provider: its first registry model
    assert ws.target("claude-api").model.provider == "claude-api"
    ws.set_default("openai", "gpt-4.1-mini")
    assert ws.target("openai").model.id == "gpt-4.1-mini"
    # a provider with no static models gets a dynamic "default"
    assert ws.target("groq").model.id == "default"
    with pytest.raises(ModelNotFound):
        ws.target("openai", "gpt-nope")


def test_base_url_override_environment_and_defaults(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    assert ws.target("openai", "gpt-4.1").base_url == "https://api.openai.com/v1"
    ws.set_provider_setting("openai", "base_url", "http://127.0.0.1:8080/v1/")
    assert ws.target("openai", "gpt-4.1").base_url == "http://127.0.0.1:8080/v1"
    ws.set_provider_setting("openai", "base_url", None)
    assert ws.target("openai", "gpt-4.1").base_url == "https://api.openai.com/v1"

    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:11500")
    assert ws.target("ollama", "llama3").base_url == "http://127.0.0.1:11500"

    assert ws.target("bedrock").base_url == "https://bedrock-runtime.us-east-1.amazonaws.com"
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    assert ws.target("bedrock").base_url == "https://bedrock-runtime.eu-west-3.amazonaws.com"
    ws.set_provider_setting("bedrock", "region", "ap-south-1")
    assert ws.target("bedrock").settings["region"] == "ap-south-1"
    assert ws.target("bedrock").base_url == "https://bedrock-runtime.ap-south-1.amazonaws.com"

    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://res.openai.azure.com")
    azure = ws.target("azure-openai", "my-deploy")
    assert azure.base_url == "https://res.openai.azure.com"
    assert azure.settings["api_version"] == "2024-10-21"  # AuthField.default
    ws.set_provider_setting("azure-openai", "deployment", "prod-gpt")
    assert ws.target("azure-openai", "x").settings["deployment"] == "prod-gpt"
    ws.set_provider_setting("claude-sdk", "cli_path", "/opt/claude")
    assert ws.target("claude-sdk").settings["cli_path"] == "/opt/claude"
    assert ws.provider_settings("claude-sdk") == {"cli_path": "/opt/claude"}


def test_secret_fields_are_refused_as_settings(ws: Workspace) -> None:
    with pytest.raises(ConfigurationError, match="providers set-key openai"):
        ws.set_provider_setting("openai", "api_key", "sk-should-not-be-stored-123")
    with pytest.raises(ConfigurationError, match="--field secret_access_key"):
        ws.set_provider_setting("bedrock", "secret_access_key", "abc")
    with pytest.raises(ConfigurationError, match="has no setting"):
        ws.set_provider_setting("openai", "colour", "blue")
    with pytest.raises(ConfigurationError, match="http"):
        ws.set_provider_setting("openai", "base_url", "ftp://x")


def test_secrets_come_from_the_credential_store(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    assert "api_key" not in ws.target("openai", "gpt-4.1").secrets
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-environment-1234")
    assert ws.target("openai", "gpt-4.1").secret() == "sk-from-environment-1234"
    ws.credentials.set("openai", "api_key", "sk-from-keychain-5678")
    assert ws.target("openai", "gpt-4.1").secret() == "sk-from-keychain-5678"


async def test_enable_disable_persist_and_reset_live_state(ws: Workspace, open_ws: Any) -> None:
    assert ws.is_enabled("groq")
    ws.registry.register(ws.registry.get("groq", "llama-x"))
    await ws.disable("groq")
    assert not ws.is_enabled("groq")
    assert ws.health.resets == ["groq"]  # type: ignore[attr-defined]
    assert not [m for m in ws.registry.list(provider="groq")]
    reopened = open_ws()
    assert not reopened.is_enabled("groq") and reopened.is_enabled("openai")
    await ws.enable("groq")
    assert ws.is_enabled("groq")
    reopened.close()


async def test_custom_endpoint_key_goes_to_the_keychain_not_the_database(ws: Workspace, open_ws: Any) -> None:
    canary = "sk-canary-custom-0123456789"
    spec = ws.add_custom_endpoint(
        CustomEndpoint("Gateway", "http://127.0.0.1:9/v1/", "big-model", context_window=64_000, vision=True),
        api_key=canary,
    )
    assert spec.id == "custom-gateway" and spec.base_url == "http://127.0.0.1:9/v1"
    model = ws.registry.get("custom-gateway", "big-model")
    assert (model.context_window, model.vision, model.tools) == (64_000, True, True)
    target = ws.target("custom-gateway")
    assert target.model.id == "big-model" and target.secret() == canary
    assert ws.custom_endpoints()[0].has_key
    if ws.path is not None:
        db = ws.path.read_bytes() + (ws.path.with_name(ws.path.name + "-wal").read_bytes()
                                     if ws.path.with_name(ws.path.name + "-wal").exists() else b"")
    else:  # PostgreSQL: everything the database holds, as pg_dump writes it out
        db = dump_url(ws.store.url).encode()
        assert b"custom-gateway" in db  # the dump does hold the endpoint itself
    assert canary.encode() not in db

    reopened = open_ws()
    assert reopened.target("custom-gateway").model.context_window == 64_000
    reopened.close()

    ws.create_agent("user-of-gw", provider="custom-gateway", model="big-model")
    with pytest.raises(ConfigurationError, match="user-of-gw"):
        ws.remove_custom_endpoint("custom-gateway")
    ws.delete_agent("user-of-gw")
    ws.remove_custom_endpoint("custom-gateway")
    assert ws.custom_endpoints() == []
    assert ws.credentials.get("custom-gateway") is None
    assert "custom-gateway" not in ws.provider_ids()


@pytest.mark.sqlite_only("reads the SQLite file")
def test_schema_is_migrated_and_head_constant_matches_alembic(ws: Workspace) -> None:
    from ironspire.store import migrations

    assert migrations.current_revision(ws.store.engine) == migrations.HEAD == migrations.script_head()
    con = sqlite3.connect(ws.path)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    con.close()
    assert {"settings", "agents", "messages", "usage", "custom_endpoints", "provider_settings"} <= tables


def test_default_route_persists(ws: Workspace, open_ws: Any) -> None:
    ws.set_default("claude-api", "claude-sonnet-5-5")
    reopened = open_ws()
    assert reopened.default == ("claude-api", "claude-sonnet-5-5")
    reopened.close()
    assert json.loads(json.dumps(ws.settings()))["default_model"] == "claude-sonnet-5-5"
