"""A provider that sends no usage: the ledger says "unknown", never a free request.

The stream is a real recording (realdata/azure/openllmetry ... test_chat_streaming.yaml: an older
Azure api-version that streams no usage chunk), served through the workspace's own Transport and
the real adapter, so the row is what a user's `ironspire analytics` would read.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from ironspire.errors import ProviderUnavailable
from ironspire.messages import Usage
from ironspire.workspace import Workspace
from support.recordings import load
from support.replay import ReplayTransport, Server
from workspace.conftest import FakeHealth
from workspace.loopback import Server as Loopback
from workspace.loopback import serving

RECORDING = "azure/openllmetry__test_azure__test_chat_streaming.yaml"


async def test_a_stream_without_usage_is_recorded_as_unknown(
    realdata: Path, tmp_path: Path, memory_keyring: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "azure-test-key-0000")
    recorded = load(realdata / RECORDING)
    assert b'"usage"' not in recorded[0].body
    server = Server(recorded[:1], keep=("content-type",))
    home = tmp_path / "ws"
    ws = Workspace.open(home, health=FakeHealth, transport=ReplayTransport(server))
    try:
        ws.set_provider_setting("azure-openai", "base_url", "https://traceloop-stg.openai.azure.com")
        ws.set_provider_setting("azure-openai", "deployment", "openllmetry-testing")
        ws.set_provider_setting("azure-openai", "api_version", "2024-02-01")
        agent = ws.create_agent("azure", provider="azure-openai", model="gpt-4o")
        events = [e async for e in agent.stream("Tell me a joke about opentelemetry")]
        reply = agent.history[-1]
        rows = ws.analytics.turns()
        kpis = ws.analytics.kpis()
    finally:
        await ws.aclose()

    assert events and reply.text and reply.finish_reason == "stop"
    assert reply.usage is None  # the provider said nothing about tokens
    (row,) = rows
    assert row["outcome"] == "ok" and row["usage_state"] == "unknown"
    assert (row["input_tokens"], row["output_tokens"]) == (0, 0)
    assert kpis["turns_without_usage"] == 1 and kpis["turns"] == 1
    con = sqlite3.connect(home / "ironspire.db")
    try:
        assert con.execute("SELECT usage_state FROM usage").fetchall() == [("unknown",)]
    finally:
        con.close()
    # what `ironspire analytics` tells the user about it
    from typer.testing import CliRunner

    from ironspire.cli.app import app

    monkeypatch.setenv("IRONSPIRE_HOME", str(home))
    result = CliRunner().invoke(app, ["analytics"])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())  # as read, whatever the terminal's width wrapped
    assert "1 without usage (not counted)" in said
    # its cost is unknown too: the sums say they leave it out rather than showing a bare $0
    assert "spend $0 + 1 turn(s) of unknown cost" in said
    assert re.search(r"azure\s.*\$0 \+1\?", result.output)


async def _one_turn(ws: Workspace, srv: Any) -> None:
    from ironspire.catalog.providers import CustomEndpoint

    ws.add_custom_endpoint(CustomEndpoint("Loop", srv.url + "/v1", "m"))
    await ws.create_agent("counted", provider="custom-loop", model="m").send("hello")


async def test_reported_usage_is_marked_reported_in_the_ledger(open_ws: Any) -> None:
    ws: Workspace = open_ws()
    try:
        with serving(Loopback("openai")) as (srv,):
            await _one_turn(ws, srv)
        rows = ws.analytics.turns()
        reply = ws.agent("counted").history[-1]
    finally:
        await ws.aclose()
    assert rows[0]["usage_state"] == "reported" and rows[0]["input_tokens"] == 60  # 100 prompt - 40 cached
    assert reply.usage == Usage(60, 20, 40, 0, 0)


async def test_a_failed_request_is_recorded_with_unknown_usage_not_zero(open_ws: Any) -> None:
    """Nothing reached us that says what the failed request used; the row says so."""
    ws: Workspace = open_ws()
    try:
        with serving(Loopback("openai", status=500)) as (srv,), pytest.raises(ProviderUnavailable):
            await _one_turn(ws, srv)
        rows = ws.analytics.turns()
    finally:
        await ws.aclose()
    (row,) = rows
    assert row["outcome"] == "ProviderUnavailable" and row["usage_state"] == "unknown"
    assert ws.analytics.kpis()["turns_without_usage"] == 0  # only answered turns count there
