"""The view layer: the records the CLI prints (and the web app will show) are built once, from the
workspace, with one definition of "configured" that the health monitor shares."""

from __future__ import annotations

import ast
import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ironspire import views
from ironspire.catalog.providers import CustomEndpoint
from ironspire.cli.app import app
from ironspire.errors import AuthenticationError, ConfigurationError, CredentialsMissing
from ironspire.workspace import Workspace
from support.memory_keyring import MemoryKeyring, use_memory_keyring

runner = CliRunner()
SRC = Path(__file__).resolve().parents[2] / "src" / "ironspire"


@pytest.fixture
def keychain(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[MemoryKeyring]]:
    yield from use_memory_keyring(monkeypatch)


@pytest.fixture
def ws(keychain: type[MemoryKeyring]) -> Iterator[Workspace]:
    w = Workspace.open()
    try:
        yield w
    finally:
        w.close()


def cli_json(*args: str) -> Any:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def without_check_time(record: dict[str, Any]) -> dict[str, Any]:
    """A provider not checked yet has no real check time (the status is made when asked)."""
    health = dict(record["health"])
    if health["state"] in ("unknown", "disabled"):
        health.pop("checked_at")
    return {**record, "health": health}


def set_up_a_mixed_workspace(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    ws.credentials.set("openai", "api_key", "sk-views-openai-000001")
    monkeypatch.setenv("GROQ_API_KEY", "gsk_views_groq_000002")
    ws.credentials.set("azure-openai", "api_key", "azure-views-key-000003")  # but no endpoint or deployment
    ws.set_provider_setting("bedrock", "credential_chain", "true")  # signs with profiles / SSO, no stored keys
    ws.credentials.set("mistral", "api_key", "mistral-views-key-000004")
    ws.add_custom_endpoint(CustomEndpoint("lab", "http://127.0.0.1:9/v1", "my-model"))


# --- one definition of "configured" ------------------------------------------------------------


def test_the_monitor_and_the_views_agree_on_which_providers_are_configured(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_up_a_mixed_workspace(ws, monkeypatch)
    cards = {c.id: c for c in views.providers(ws)}
    assert set(cards) == set(ws.provider_ids())
    for pid, card in cards.items():
        assert card.configured == ws.health.configured(pid), pid  # type: ignore[attr-defined]

    configured = {pid for pid, c in cards.items() if c.configured}
    assert configured == {"claude-sdk", "openai", "ollama", "bedrock", "mistral", "groq", "custom-lab"}
    assert cards["azure-openai"].missing == ("base_url", "deployment")
    assert cards["claude-api"].missing == ("api_key",)
    # without the credential chain, Bedrock needs its key pair: neither side may probe it keyless
    ws.set_provider_setting("bedrock", "credential_chain", None)
    bedrock = views.provider(ws, "bedrock")
    assert bedrock.missing == ("access_key_id", "secret_access_key")
    assert not ws.health.configured("bedrock")  # type: ignore[attr-defined]
    # a disabled provider keeps its setup but is not ready (not checked, not routed to)
    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:9")
    asyncio.run(ws.disable("mistral"))
    mistral = views.provider(ws, "mistral")
    assert mistral.configured and not mistral.enabled and ws.health.configured("mistral")  # type: ignore[attr-defined]
    assert not views.provider_readiness(ws, "mistral").ready
    assert "mistral" not in views.configured_ids(ws)
    assert set(views.configured_ids(ws)) == {"openai", "ollama", "groq", "custom-lab"}


def test_a_missing_value_gives_the_card_its_remedy(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    set_up_a_mixed_workspace(ws, monkeypatch)
    claude = views.provider(ws, "claude-api")
    assert claude.remedy is not None and claude.remedy.action == "set_key"
    assert claude.remedy.args == {"provider": "claude-api", "field": "api_key", "env": "ANTHROPIC_API_KEY"}
    assert claude.credential_source == "missing"
    azure = views.provider(ws, "azure-openai")
    assert azure.remedy is not None and azure.remedy.action == "set_setting"
    assert azure.remedy.args == {"provider": "azure-openai", "name": "base_url"}
    assert "`ironspire providers set azure-openai base_url VALUE`" in azure.remedy.text
    openai = views.provider(ws, "openai")
    assert openai.remedy is None and openai.credential_source == "keychain"
    assert openai.credential_masked == "sk-…0001"
    assert views.provider(ws, "groq").credential_source == "environment"
    assert views.provider(ws, "ollama").credential_source == "none"
    assert views.provider(ws, "custom-lab").credential_source == "none"  # its key is optional and unset
    assert views.keystore(ws).to_json() == {"kind": "keychain", "name": views.keystore(ws).name, "problem": None,
                                             "hint": None}


# --- the records are what --json prints ----------------------------------------------------------


def test_providers_list_json_is_the_records(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    set_up_a_mixed_workspace(ws, monkeypatch)
    records = [without_check_time(c.to_json()) for c in views.providers(ws)]
    assert [without_check_time(r) for r in cli_json("providers", "list")] == records
    openai = next(r for r in records if r["id"] == "openai")
    assert openai["credential"] == {"source": "keychain", "masked": "sk-…0001", "missing": []}
    assert openai["health"]["state"] == "unknown" and openai["remedy"] is None
    assert "sk-views-openai-000001" not in json.dumps(records)  # secrets are never in a record


def test_agents_json_is_the_records_and_says_why_a_turn_may_fail(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_up_a_mixed_workspace(ws, monkeypatch)
    ws.set_default("openai", "gpt-4.1")
    ws.create_agent("writer")
    ws.create_agent("critic", provider="claude-api", model="claude-haiku-4-5")
    ws.create_agent("coder", provider="mistral", model="mistral-large-2512")
    ws.health.observe("mistral", AuthenticationError("mistral", "Unauthorized"), 0.05)

    rows = {a.name: a for a in views.agents(ws)}
    assert cli_json("agents", "list") == [a.to_json() for a in views.agents(ws)]
    assert rows["writer"].inherited and rows["writer"].route_kind == "default" and rows["writer"].alert is None
    critic = rows["critic"].alert
    assert critic is not None and critic.kind == "credentials_missing" and critic.remedy is not None
    assert critic.remedy.action == "set_key" and rows["critic"].warning is None  # health says nothing yet
    coder = rows["coder"]
    assert coder.warning is not None and coder.warning.startswith("mistral is invalid key")
    assert coder.alert is not None and coder.alert.kind == "unhealthy" and coder.alert.remedy is not None
    # the one-click reassign offers the default route, which is not known to be failing
    assert coder.alert.remedy.action == "switch_agent"
    assert coder.alert.remedy.args == {"agent": "coder", "from": "mistral", "provider": "openai", "model": "gpt-4.1"}

    asyncio.run(ws.disable("openai"))
    writer = views.agent(ws, "writer")
    assert writer.alert is not None and writer.alert.kind == "disabled"
    assert writer.alert.remedy is not None and writer.alert.remedy.action == "enable_provider"
    shown = cli_json("agents", "show", "writer")
    assert shown == views.agent(ws, "writer", detail=True).to_json()
    assert shown["messages"] == 0 and shown["unanswered"] == 0


def test_an_agent_without_any_route_is_told_to_set_the_default(ws: Workspace) -> None:
    ws.create_agent("lost")
    view = views.agent(ws, "lost")
    assert view.provider is None and view.alert is not None and view.alert.kind == "no_route"
    assert view.alert.remedy is not None and view.alert.remedy.action == "set_default"
    assert cli_json("default", "show") == views.default_route(ws).to_json() == {"provider": None, "model": None}


def test_models_json_is_the_records_with_chips_and_prices() -> None:
    rows = views.models(provider="openai")
    assert cli_json("models", "list", "--provider", "openai") == [m.to_json() for m in rows]
    by_id = {m.id: m for m in rows}
    gpt = by_id["gpt-4.1"]
    assert gpt.provider_name == "OpenAI" and gpt.price.known and gpt.source == "builtin"
    assert set(gpt.chips) <= {"tools", "vision", "reasoning", "no-stream"} and "tools" in gpt.chips
    assert [m.id for m in views.models(provider="openai", capability="vision")] == [m.id for m in rows if m.vision]
    with pytest.raises(ConfigurationError, match="Did you mean vision"):
        views.models(capability="visoin")


def test_health_rows_carry_the_dot_and_what_is_shown(ws: Workspace) -> None:
    ws.health.observe("groq", AuthenticationError("groq", "Invalid API Key"), 0.02)
    rows = {h.provider: h for h in views.health(ws)}
    assert rows["groq"].dot == "red" and rows["groq"].label == "invalid key" and rows["groq"].checked
    assert rows["groq"].latency_ms == pytest.approx(20.0)
    assert rows["openai"].dot == "grey" and not rows["openai"].checked
    assert rows["groq"].to_json() == ws.health.status("groq").to_dict()


# --- remedies ------------------------------------------------------------------------------------


def test_errors_carry_a_remedy_the_cli_renders_as_todays_hint(ws: Workspace) -> None:
    missing = CredentialsMissing("xai", "api_key", "XAI_API_KEY")
    assert missing.remedy is not None and missing.remedy.action == "set_key"
    assert missing.hint == missing.remedy.text == "To fix: run `ironspire providers set-key xai` or set XAI_API_KEY."

    agent = ws.create_agent("solo", provider="openai", model="gpt-4.1")
    asyncio.run(ws.disable("openai"))
    with pytest.raises(ConfigurationError) as disabled:
        agent.target()
    assert disabled.value.remedy is not None and disabled.value.remedy.action == "enable_provider"
    assert disabled.value.remedy.args == {"provider": "openai", "agent": "solo"}
    assert disabled.value.hint == ("Run `ironspire providers enable openai`, or switch the agent to another "
                                   "provider.")

    record = views.error(disabled.value).to_json()
    assert record["type"] == "ConfigurationError" and record["remedy"]["action"] == "enable_provider"
    assert record["hint"] in str(disabled.value)


def test_an_ollama_model_not_pulled_offers_the_pull() -> None:
    from ironspire.catalog.models import dynamic_model
    from ironspire.catalog.providers import builtin
    from ironspire.protocols.base import Target
    from ironspire.protocols.ollama_chat import classify_message

    target = Target(builtin("ollama"), dynamic_model("ollama", "qwen3:0.6b"), "http://127.0.0.1:11434")
    err = classify_message("model 'qwen3:0.6b' not found", target, status=404)
    assert err is not None and err.remedy is not None
    assert err.remedy.action == "pull_model" and err.remedy.args == {"provider": "ollama", "model": "qwen3:0.6b"}
    assert "`ollama pull qwen3:0.6b`" in err.hint and "models list" in err.hint


# --- layering ------------------------------------------------------------------------------------


def _imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


def test_views_never_import_a_front_end_and_only_front_ends_import_views() -> None:
    for path in (SRC / "views").glob("*.py"):
        assert not [n for n in _imports(path) if n.startswith(("ironspire.cli", "ironspire.web"))], path.name
    for path in SRC.rglob("*.py"):
        layer = path.relative_to(SRC).parts[0]
        if layer in ("cli", "web", "views"):
            continue
        assert not [n for n in _imports(path) if n.startswith("ironspire.views")], path


def test_importing_the_views_loads_no_database_keychain_or_http_code() -> None:
    code = ("import sys, ironspire.views, ironspire.errors\n"
            "print(sorted(m for m in ('sqlalchemy', 'keyring', 'httpx', 'httpx2', 'aiohttp') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


async def test_history_rows_keep_a_failed_turns_message_apart(ws: Workspace) -> None:
    from ironspire.errors import ProviderUnavailable
    from support.http_stub import refused_port

    ws.set_provider_setting("ollama", "base_url", f"http://127.0.0.1:{refused_port()}")
    agent = ws.create_agent("local", provider="ollama", model="llama3.2")
    with pytest.raises(ProviderUnavailable) as failed:
        await agent.send("are you there?")
    await ws.aclose()
    assert failed.value.remedy is not None and failed.value.remedy.action == "check_provider"
    assert views.history(ws, "local") == []
    (entry,) = views.history(ws, "local", unanswered=True)
    assert entry.status == "unanswered" and entry.role == "user" and entry.produced_by is None
    assert entry.message.text == "are you there?"
    shown = await asyncio.to_thread(cli_json, "history", "local", "--all")
    assert shown == [entry.to_json()]


def test_every_public_name_resolves_to_its_definition() -> None:
    import importlib

    assert set(views.__all__) == set(views._WHERE)
    for name in views.__all__:
        assert getattr(views, name) is getattr(importlib.import_module(views._WHERE[name]), name)
    with pytest.raises(AttributeError):
        views.no_such_view  # noqa: B018


async def test_check_probes_the_configured_providers_and_the_cards_show_it(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from support.http_stub import Reply, StubServer

    refused = Reply(401, {"error": {"message": "Invalid API Key: sk-leak-0000000009"}})
    async with StubServer({"/ok/models": Reply(200, {"data": []}), "/bad/models": refused}) as s:
        ws.set_provider_setting("groq", "base_url", s.url + "/ok")
        ws.credentials.set("groq", "api_key", "gsk_views_check_0001")
        ws.set_provider_setting("mistral", "base_url", s.url + "/bad")
        monkeypatch.setenv("MISTRAL_API_KEY", "mistral-views-check-0002")
        ws.set_provider_setting("together", "base_url", s.url + "/ok")  # no key: not configured, not probed
        bound = ws.health.timeout  # type: ignore[attr-defined]
        rows = {h.provider: h for h in await views.check(ws, limit=2.0)}
        assert ws.health.timeout == bound  # type: ignore[attr-defined]  # the limit was for these checks only
        await ws.aclose()
    assert set(rows) == {"groq", "mistral"} and {r.path for r in s.seen} == {"/ok/models", "/bad/models"}
    assert rows["groq"].dot == "green" and rows["groq"].shown_latency_ms is not None
    assert rows["mistral"].dot == "red" and rows["mistral"].label == "invalid key"
    assert "sk-leak-0000000009" not in rows["mistral"].detail  # the provider's words, masked
    card = views.provider(ws, "mistral")
    assert card.health == rows["mistral"] and card.to_json()["health"]["state"] == "invalid_key"


@pytest.mark.parametrize(("cost", "shown"), [
    (2.7777e-05, "$0.00002778"),  # a local model's burn rate per hour: plain decimals, never 2.778e-05
    (0.000123456, "$0.0001235"),
    (0.005, "$0.005"),
    (3e-09, "<$0.000001"),
    (0.0123, "$0.01"),
    (12.5, "$12.5"),
    (0.0, "0"),
])
def test_costs_below_a_cent_read_as_decimals(cost: float, shown: str) -> None:
    from ironspire.views.formatting import usd

    assert usd(cost) == shown
