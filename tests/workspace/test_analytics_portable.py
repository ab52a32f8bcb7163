"""Analytics over a known ledger; export/backup/import round trips that never carry a credential."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from ironspire.catalog.providers import CustomEndpoint
from ironspire.errors import ConfigurationError
from ironspire.messages import Message
from ironspire.workspace import Workspace

HOUR = 3600.0


def _row(ws: Workspace, ago: float, agent: str, provider: str, model: str, *, cost: float, inp: int = 100,
         out: int = 10, cache_read: int = 0, outcome: str = "ok", session: str | None = None) -> dict[str, Any]:
    return dict(at=time.time() - ago, session=session or ws.session_id, agent=agent, provider=provider,
                    model=model, input_tokens=inp, output_tokens=out, cache_read_tokens=cache_read,
                    cache_write_tokens=0, reasoning_tokens=0, cost_usd=cost, api_cost_usd=cost, latency_s=0.5,
                    outcome=outcome, streamed=False)


@pytest.fixture
def ledger(ws: Workspace) -> Workspace:
    ws.store.insert_usage([
        _row(ws, 0.1 * HOUR, "coder", "openai", "gpt-4.1", cost=0.50, cache_read=300),
        _row(ws, 0.2 * HOUR, "coder", "claude-api", "claude-sonnet-5-5", cost=0.25),
        _row(ws, 0.3 * HOUR, "reviewer", "openai", "gpt-4.1", cost=0.25, outcome="RateLimitError"),
        _row(ws, 3 * HOUR, "reviewer", "ollama", "llama3", cost=0.0, session="older"),
        _row(ws, 48 * HOUR, "coder", "openai", "gpt-4.1", cost=4.0, session="older"),
    ])
    return ws


def test_totals_per_agent_provider_model_and_period(ledger: Workspace) -> None:
    stats = ledger.analytics
    by_agent = {r["agent"]: r for r in stats.summary("agent", "24h")}
    assert by_agent["coder"]["cost_usd"] == pytest.approx(0.75) and by_agent["coder"]["turns"] == 2
    assert by_agent["reviewer"]["errors"] == 1 and by_agent["reviewer"]["turns"] == 1
    assert [r["provider"] for r in stats.summary("provider", "1h")] == ["openai", "claude-api"]
    assert {r["model"] for r in stats.summary("model", "all")} == {
        "openai/gpt-4.1", "claude-api/claude-sonnet-5-5", "ollama/llama3"}
    assert stats.summary("agent", "7d")[0]["cost_usd"] == pytest.approx(4.75)
    assert len(stats.turns("session")) == 3
    assert len(stats.turns("6h")) == 4


def test_kpis(ledger: Workspace) -> None:
    k = ledger.analytics.kpis("1h")
    assert k["total_spend_usd"] == pytest.approx(1.0)
    assert k["active_agents"] == 2 and k["turns"] == 2 and k["errors"] == 1
    assert k["total_tokens"] == 3 * 110 + 300
    assert k["cache_hit_rate"] == pytest.approx(300 / 600)
    assert k["burn_rate_usd_per_hour"] == pytest.approx(1.0, rel=0.01)


def test_custom_range_and_bad_period(ledger: Workspace) -> None:
    from datetime import UTC, datetime, timedelta

    start = (datetime.now(UTC) - timedelta(hours=50)).isoformat()
    end = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    rows = ledger.analytics.turns(f"{start}..{end}")
    assert [r["model"] for r in rows] == ["gpt-4.1", "llama3"]
    with pytest.raises(ConfigurationError, match="unknown period"):
        ledger.analytics.turns("fortnight")


def test_csv_exports(ledger: Workspace, tmp_path: Path) -> None:
    raw = io.StringIO()
    assert ledger.analytics.turns_csv(raw, "24h") == 4
    rows = list(csv.DictReader(io.StringIO(raw.getvalue())))
    assert rows[0]["agent"] == "reviewer" and rows[0]["provider"] == "ollama" and rows[0]["at"].endswith("+00:00")
    path = tmp_path / "summary.csv"
    assert ledger.analytics.summary_csv(path, "provider", "all") == 3
    summary = list(csv.DictReader(path.open()))
    assert summary[0]["provider"] == "openai" and float(summary[0]["cost_usd"]) == pytest.approx(4.75)


def _canary_setup(ws: Workspace) -> str:
    canary = "sk-canary-do-not-export-9876543210"
    ws.credentials.set("openai", "api_key", canary)
    ws.add_custom_endpoint(CustomEndpoint("gw", "http://127.0.0.1:9/v1", "m", context_window=50_000),
                           api_key=canary + "-gw")
    ws.set_default("openai", "gpt-4.1")
    ws.set_provider_setting("openai", "base_url", "http://127.0.0.1:9/v1")
    ws.set_setting("degrade_images", "omit")
    agent = ws.create_agent("coder", provider="custom-gw", model="m", system="terse")
    ws.create_agent("helper")
    ws.store.replace_history(agent.id, [(m.role, m.to_json()) for m in (Message.user("hello"),
                                                                        Message.assistant("hi there"))])
    agent._history = None
    return canary


def _no_canary(path: Path, canary: str) -> None:
    data = path.read_bytes()
    assert canary.encode() not in data and b"sk-canary" not in data


@pytest.mark.sqlite_only("a second workspace in another home (one shared database would merge into itself)")
async def test_export_import_round_trip_without_credentials(ws: Workspace, open_ws: Any, tmp_path: Path) -> None:
    canary = _canary_setup(ws)
    out = ws.export(tmp_path / "project.json", with_conversations=True)
    _no_canary(out, canary)
    data = json.loads(out.read_text())
    assert data["custom_endpoints"][0]["has_key"] is True
    assert data["providers"]["openai"]["settings"] == {"base_url": "http://127.0.0.1:9/v1"}

    fresh = open_ws(tmp_path / "elsewhere")
    counts = fresh.import_(out)
    assert counts == {"custom_endpoints": 1, "provider_settings": 1, "agents": 2, "messages": 2}
    assert fresh.default == ("openai", "gpt-4.1") and fresh.setting("degrade_images") == "omit"
    coder = fresh.agent("coder")
    assert (coder.own_provider, coder.own_model, coder.system) == ("custom-gw", "m", "terse")
    assert [m.text for m in coder.history] == ["hello", "hi there"]
    assert fresh.agent("helper").inherits
    assert fresh.registry.get("custom-gw", "m").context_window == 50_000
    fresh.close()
    plain = ws.export(tmp_path / "plain.json")
    assert "messages" not in json.loads(plain.read_text())["agents"][0]


@pytest.mark.sqlite_only("a second workspace in another home; PostgreSQL: tests/store/test_copy.py")
async def test_backup_is_consistent_and_restorable(ws: Workspace, open_ws: Any, tmp_path: Path) -> None:
    canary = _canary_setup(ws)
    copy = ws.backup(tmp_path / "state.db")
    _no_canary(copy, canary)
    con = sqlite3.connect(copy)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert con.execute("SELECT count(*) FROM messages").fetchone()[0] == 2
    con.close()

    other = open_ws(tmp_path / "other")
    other.create_agent("to-be-replaced")
    assert other.import_(copy) == {"agents": 2, "messages": 2}
    assert [a.name for a in other.agents()] == ["coder", "helper"]
    assert [m.text for m in other.agent("coder").history] == ["hello", "hi there"]
    assert other.default == ("openai", "gpt-4.1")
    other.close()


def test_import_rejects_foreign_files(ws: Workspace, tmp_path: Path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text('{"hello": 1}')
    with pytest.raises(ConfigurationError, match="not an Ironspire export"):
        ws.import_(bad)
