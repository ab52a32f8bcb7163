"""`ironspire providers ...` end to end: real workspace, real keyring API, loopback servers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ironspire.cli.app import app
from ironspire.cli.providers import _dot
from ironspire.credentials import PASSPHRASE_ENV
from ironspire.errors import ConfigurationError
from ironspire.health import HealthState, HealthStatus
from support.http_stub import Reply, StubServer
from support.memory_keyring import MemoryKeyring, use_memory_keyring

runner = CliRunner()


@pytest.fixture
def keychain(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[MemoryKeyring]]:
    yield from use_memory_keyring(monkeypatch)


def invoke(*args: str, input: str | None = None) -> Any:
    return runner.invoke(app, ["providers", *args], input=input)


def listing() -> dict[str, dict[str, Any]]:
    result = invoke("list", "--json")
    assert result.exit_code == 0, result.output
    return {p["id"]: p for p in json.loads(result.output)}


def auth(record: dict[str, Any], name: str) -> dict[str, Any]:
    return next(a for a in record["auth"] if a["name"] == name)


def test_list_shows_where_each_credential_comes_from(keychain: type[MemoryKeyring],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROQ_API_KEY", "gsk_environment_canary_0001")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    before = listing()
    assert [p["group"] for p in before.values()] == ["primary"] * 4 + ["cloud"] * 3 + ["openai-compatible"] * 6
    assert auth(before["openai"], "api_key")["source"] == "missing"
    groq = auth(before["groq"], "api_key")
    assert groq["source"] == "environment" and groq["env_var"] == "GROQ_API_KEY"
    assert groq["masked"] == "gsk…0001"
    assert auth(before["bedrock"], "region") | {"label": None} == {
        "name": "region", "label": None, "secret": False, "required": True,
        "env": ["AWS_REGION", "AWS_DEFAULT_REGION"], "source": "environment", "env_var": "AWS_REGION",
        "value": "eu-west-1",
    }
    assert all(p["enabled"] for p in before.values())

    stored = invoke("set-key", "groq", input="gsk_keychain_canary_0002\n")
    assert stored.exit_code == 0, stored.output
    assert "gsk_keychain_canary_0002" not in stored.output and "gsk…0002" in stored.output
    after = listing()
    assert auth(after["groq"], "api_key")["source"] == "keychain"
    assert keychain.entries[("ironspire", "groq:api_key")] == "gsk_keychain_canary_0002"

    table = invoke("list")
    assert table.exit_code == 0
    for secret in ("gsk_keychain_canary_0002", "gsk_environment_canary_0001"):
        assert secret not in table.output and secret not in json.dumps(after)


def test_secrets_never_come_from_argv(keychain: type[MemoryKeyring]) -> None:
    result = invoke("set-key", "openai", "sk-typed-on-the-command-line")
    assert result.exit_code == 2  # usage error: there is no such argument
    assert keychain.entries == {}


def test_set_key_refuses_settings_before_asking(keychain: type[MemoryKeyring]) -> None:
    result = invoke("set-key", "bedrock", "--field", "region", input="us-west-2\n")
    assert isinstance(result.exception, ConfigurationError)
    assert "providers set bedrock region" in str(result.exception)
    bedrock = invoke("set-key", "bedrock", "--field", "secret_access_key", input="wJalrXUtnFEMI/K7MDENG\n")
    assert bedrock.exit_code == 0 and keychain.entries[("ironspire", "bedrock:secret_access_key")]


def test_remove_key_reports_an_environment_value_that_remains(keychain: type[MemoryKeyring],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    assert invoke("set-key", "mistral", input="mistral-keychain-canary\n").exit_code == 0
    monkeypatch.setenv("MISTRAL_API_KEY", "mistral-env-canary-0000")
    removed = invoke("remove-key", "mistral")
    assert removed.exit_code == 0 and "Removed mistral api_key" in removed.output
    assert "MISTRAL_API_KEY" in removed.output
    assert invoke("remove-key", "mistral").output.startswith("No stored api_key for mistral")
    assert auth(listing()["mistral"], "api_key")["source"] == "environment"


def test_no_keychain_is_a_clear_error_when_piped() -> None:
    # conftest leaves keyring on its null backend: nothing can be stored
    result = invoke("set-key", "openai", input="sk-nowhere-to-go-0000\n")
    assert isinstance(result.exception, ConfigurationError)
    message = str(result.exception)
    assert "no keychain" in message and "encrypted" in message and "sk-nowhere-to-go-0000" not in message
    assert "No keychain" in invoke("list").output


def test_encrypted_file_store_from_the_cli(isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSPHRASE_ENV, "a long passphrase")
    switched = invoke("keystore", "--encrypted-file")
    assert switched.exit_code == 0, switched.output
    assert "encrypted file" in switched.output
    assert invoke("set-key", "xai", input="xai-encrypted-canary-0001\n").exit_code == 0
    assert auth(listing()["xai"], "api_key")["source"] == "keychain"
    files = [p for p in isolated_env.rglob("*") if p.is_file()]
    assert any(p.name == "credentials.cfg" for p in files)
    assert all(b"xai-encrypted-canary-0001" not in p.read_bytes() for p in files)


def test_set_overrides_base_url_and_refuses_secrets(keychain: type[MemoryKeyring]) -> None:
    assert invoke("set", "openai", "base_url", "http://127.0.0.1:8999/v1").exit_code == 0
    assert listing()["openai"]["base_url_override"] == "http://127.0.0.1:8999/v1"
    refused = invoke("set", "openai", "api_key", "sk-in-argv-000000")
    assert isinstance(refused.exception, ConfigurationError) and "set-key" in str(refused.exception)
    assert invoke("set", "openai", "base_url", "").exit_code == 0
    assert listing()["openai"]["base_url_override"] is None


async def test_add_custom_checks_it_right_away(keychain: type[MemoryKeyring]) -> None:
    async with StubServer({"/v1/models": Reply(200, {"object": "list", "data": [{"id": "qwen3-8b"}]})}) as s:
        import asyncio

        result = await asyncio.to_thread(
            invoke, "add-custom", "--name", "Lab Box", "--base-url", s.url + "/v1", "--model-id", "qwen3-8b",
            "--context-window", "40960", "--no-tools", "--with-key", "--json", input="lab-box-canary-key-01\n",
        )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["provider"]["id"] == "custom-lab-box" and out["health"]["state"] == "reachable"
    assert "lab-box-canary-key-01" not in result.output
    (req,) = s.seen
    assert req.path == "/v1/models" and req.headers["authorization"] == "Bearer lab-box-canary-key-01"
    record = listing()["custom-lab-box"]
    assert record["group"] == "custom" and auth(record, "api_key")["source"] == "keychain"


async def test_add_custom_on_the_responses_api(keychain: type[MemoryKeyring]) -> None:
    import asyncio

    refused = invoke("add-custom", "--name", "Odd", "--base-url", "http://127.0.0.1:9/v1", "--model-id", "m",
                     "--api", "assistants")
    assert isinstance(refused.exception, ConfigurationError) and "--api must be one of chat, responses" in str(
        refused.exception)
    assert "custom-odd" not in listing()  # nothing was stored
    async with StubServer({"/v1/models": Reply(200, {"object": "list", "data": [{"id": "gpt-oss"}]})}) as s:
        added = await asyncio.to_thread(invoke, "add-custom", "--name", "Open R", "--base-url", s.url + "/v1",
                                        "--model-id", "gpt-oss", "--api", "responses", "--json")
    assert added.exit_code == 0, added.output
    assert json.loads(added.output)["health"]["state"] == "reachable"
    from ironspire.workspace import Workspace

    ws = Workspace.open()
    try:
        assert ws.target("custom-open-r", "gpt-oss").provider.protocol == "openai_responses"
    finally:
        ws.close()


async def test_check_and_disable_enable(keychain: type[MemoryKeyring]) -> None:
    import asyncio

    async with StubServer({"/v1/models": Reply(401, {"error": {"message": "Invalid API Key"}})}) as s:
        assert invoke("set", "groq", "base_url", s.url + "/v1").exit_code == 0
        assert invoke("set-key", "groq", input="gsk_rejected_canary_01\n").exit_code == 0
        checked = await asyncio.to_thread(invoke, "check", "groq", "openai", "--json")
        assert checked.exit_code == 1, checked.output  # a named provider is unhealthy: scripts see it
        states = {r["provider"]: r for r in json.loads(checked.output)}
        assert states["groq"]["state"] == "invalid_key" and "Invalid API Key" in states["groq"]["detail"]
        assert states["openai"]["state"] == "not_configured"

        assert (await asyncio.to_thread(invoke, "disable", "groq")).exit_code == 0
        assert listing()["groq"]["enabled"] is False
        text = await asyncio.to_thread(invoke, "check", "groq")
        assert "disabled" in text.output and len(s.seen) == 1  # a disabled provider is not probed
        assert (await asyncio.to_thread(invoke, "enable", "groq")).exit_code == 0
        assert listing()["groq"]["enabled"] is True
    unknown = invoke("check", "grok")
    assert isinstance(unknown.exception, ConfigurationError) and "groq" in str(unknown.exception)


async def test_workspace_disable_closes_the_pool_and_resets_health(keychain: type[MemoryKeyring]) -> None:
    from ironspire.workspace import Workspace

    async with StubServer({"/v1/models": Reply(200, {"data": []})}) as s:
        ws = Workspace.open()
        try:
            ws.set_provider_setting("together", "base_url", s.url + "/v1")
            ws.credentials.set("together", "api_key", "together-canary-0001")
            assert (await ws.health.check(["together"]))["together"].healthy  # type: ignore[attr-defined]
            assert ws.transport.has_pool("together")
            await ws.disable("together")
            assert not ws.transport.has_pool("together")
            assert ws.health.status("together").state is HealthState.DISABLED
            await ws.enable("together")
            assert ws.health.status("together").state is HealthState.UNKNOWN  # nothing cached survives
            assert (await ws.health.check(["together"]))["together"].healthy  # type: ignore[attr-defined]
        finally:
            await ws.aclose()


def test_dots_are_coloured_by_state() -> None:
    def dot(state: HealthState) -> str:
        return _dot(HealthStatus("groq", state, latency_ms=42.0))

    assert dot(HealthState.REACHABLE).startswith("[green]●") and "42 ms" in dot(HealthState.REACHABLE)
    assert dot(HealthState.INVALID_KEY).startswith("[red]●") and "invalid key" in dot(HealthState.INVALID_KEY)
    assert dot(HealthState.UNREACHABLE).startswith("[red]●")
    assert dot(HealthState.RATE_LIMITED).startswith("[yellow]●")
    assert dot(HealthState.NOT_CONFIGURED).startswith("[grey50]●")
    assert dot(HealthState.DISABLED).startswith("[grey50]●")


async def test_check_without_ids_probes_the_configured_enabled_providers_and_exits_by_health(
    keychain: type[MemoryKeyring], monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    assert json.loads(invoke("check", "--json").output) == []  # nothing set up: nothing probed
    async with StubServer({"/ok/models": Reply(200, {"data": []}),
                           "/bad/models": Reply(401, {"error": {"message": "Invalid API Key"}})}) as s:
        assert invoke("set", "groq", "base_url", s.url + "/ok").exit_code == 0
        assert invoke("set-key", "groq", input="gsk_check_canary_0001\n").exit_code == 0
        monkeypatch.setenv("MISTRAL_API_KEY", "mistral-check-canary-0002")
        assert invoke("set", "mistral", "base_url", s.url + "/bad").exit_code == 0
        assert invoke("set", "together", "base_url", s.url + "/ok").exit_code == 0  # no key: not configured
        assert (await asyncio.to_thread(invoke, "disable", "xai")).exit_code == 0

        every = await asyncio.to_thread(invoke, "check", "--json")
        assert every.exit_code == 1  # mistral's key is refused
        assert {r["provider"]: r["state"] for r in json.loads(every.output)} == {
            "groq": "reachable", "mistral": "invalid_key"}
        assert {r.path for r in s.seen} == {"/ok/models", "/bad/models"}

        good = await asyncio.to_thread(invoke, "check", "groq")
        assert good.exit_code == 0 and "● groq" in good.output and "reachable" in good.output
        bad = await asyncio.to_thread(invoke, "check", "groq", "mistral")
        assert bad.exit_code == 1 and "invalid key" in bad.output and "Invalid API Key" in bad.output
        unset = await asyncio.to_thread(invoke, "check", "together")
        assert unset.exit_code == 1 and "not configured" in unset.output
        disabled = await asyncio.to_thread(invoke, "check", "xai")
        assert disabled.exit_code == 1 and "disabled" in disabled.output


def test_health_interval_is_a_workspace_setting() -> None:
    assert "health_interval = 60 s" in invoke("health-interval").output
    assert invoke("health-interval", "15").exit_code == 0
    assert "health_interval = 15 s" in invoke("health-interval").output
    refused = invoke("health-interval", "0")
    assert isinstance(refused.exception, ConfigurationError) and "positive" in str(refused.exception)
