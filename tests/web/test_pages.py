"""Every page renders from the workspace's records, and every JSON twin returns what the CLI's
``--json`` prints for the same workspace."""

from __future__ import annotations

import json
import re
from typing import Any

from typer.testing import CliRunner

from ironspire.cli.app import app as cli
from web.conftest import Browser


def cli_json(*args: str) -> Any:
    result = CliRunner().invoke(cli, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def settled(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A provider not checked yet is stamped with the moment it was asked about; that alone may
    differ between two reads."""
    for r in records:
        if r["health"]["state"] in ("unknown", "disabled"):
            r["health"]["checked_at"] = None
    return records


async def test_providers_page_lists_the_groups_in_the_spec_order(web: Browser) -> None:
    page = await web.get("/settings/providers")
    assert page.status_code == 200
    html = page.text
    titles = re.findall(r'<section class="group" data-group="([^"]+)"', html)
    assert titles == ["Primary", "Cloud", "OpenAI-Compatible", "Custom endpoints"]
    cards = re.findall(r'<article class="card[^"]*" id="card-([a-z0-9-]+)"', html)
    assert cards == ["claude-sdk", "claude-api", "openai", "ollama", "google", "bedrock", "azure-openai", "mistral",
                     "deepseek", "xai", "groq", "together", "fireworks"]
    assert "Add Custom Endpoint" in html and html.index("Add Custom Endpoint") > html.index('id="card-fireworks"')
    assert html.index('id="default-picker"') < html.index('id="card-claude-sdk"')
    assert "Claude Code CLI under your own Claude plan" in html  # the claude-sdk card's terms note


async def test_json_twins_match_the_cli(web: Browser) -> None:
    web.ws.set_default("openai", "gpt-4.1")
    web.ws.create_agent("scout", effort="low")
    web.ws.create_agent("critic", provider="claude-api", model="claude-haiku-4-5", system="be terse")
    assert settled(await web.api("/api/providers")) == settled(cli_json("providers", "list"))
    assert await web.api("/api/agents") == cli_json("agents", "list")
    assert await web.api("/api/agents/critic") == cli_json("agents", "show", "critic")
    assert await web.api("/api/default") == cli_json("default", "show")
    assert await web.api("/api/models?provider=openai") == cli_json("models", "list", "--provider", "openai")
    assert await web.api("/api/agents/critic/history") == cli_json("history", "critic")
    combined = await web.api("/api/settings/providers")
    assert settled(combined["providers"]) == settled(cli_json("providers", "list"))
    assert {h["provider"] for h in combined["health"]} == set(web.ws.provider_ids())
    assert (await web.api("/api/agents/scout/hud"))["effort"] == "low"


async def test_every_page_names_its_json_twin(web: Browser) -> None:
    web.ws.create_agent("scout")
    for path, twin in (("/settings/providers", "/api/settings/providers"), ("/agents/scout", "/api/agents/scout"),
                       ("/agents/new", "/api/models"), ("/agents/scout/configure", "/api/models")):
        html = (await web.get(path)).text
        assert f'<link rel="alternate" type="application/json" href="{twin}">' in html, path
        assert (await web.get(twin)).status_code == 200


async def test_unknown_names_get_a_clear_error(web: Browser) -> None:
    page = await web.get("/agents/nobody")
    assert page.status_code == 400 and "no agent named" in page.text
    api = await web.get("/api/models?provider=opnai")
    assert api.status_code == 400
    assert api.json()["error"] == "ConfigurationError" and "openai" in api.json()["hint"]


async def test_pages_show_what_another_process_changed(web: Browser) -> None:
    """The CLI beside the server: its writes are on the next page, no restart needed."""
    import asyncio

    web.ws.create_agent("scout")
    for args in (["agents", "set", "scout", "--effort", "low", "--system", "from the CLI"],
                 ["providers", "disable", "groq"]):
        result = await asyncio.to_thread(CliRunner().invoke, cli, args)  # the CLI runs its own event loop
        assert result.exit_code == 0, result.output
    record = await web.api("/api/agents/scout")
    assert (record["effort"], record["system"]) == ("low", "from the CLI")
    assert not next(p for p in await web.api("/api/providers") if p["id"] == "groq")["enabled"]
    assert 'data-toggle="groq">Enable' in (await web.get("/settings/providers")).text
