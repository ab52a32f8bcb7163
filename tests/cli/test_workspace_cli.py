"""The workspace commands as a user runs them: default, agents, ask, chat, history, analytics,
export/backup/import. Loopback servers stand in for providers."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ironspire.cli.app import app
from support.cli import ok, runner
from support.memory_keyring import MemoryKeyring, use_memory_keyring
from workspace.loopback import Server, refused_port, serving


@pytest.fixture(autouse=True)
def keyring(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[MemoryKeyring]]:
    yield from use_memory_keyring(monkeypatch)


def test_default_and_agents(tmp_path: Path) -> None:
    assert json.loads(ok("default", "show", "--json").output) == {"provider": None, "model": None}
    ok("default", "set", "openai", "gpt-4.1")
    assert json.loads(ok("default", "show", "--json").output) == {"provider": "openai", "model": "gpt-4.1"}
    ok("agents", "create", "writer", "--system", "Write well.")
    ok("agents", "create", "coder", "--provider", "claude-api", "--model", "claude-sonnet-5-5")
    listed = {a["name"]: a for a in json.loads(ok("agents", "list", "--json").output)}
    assert listed["writer"]["inherited"] and listed["writer"]["model"] == "gpt-4.1"
    assert listed["coder"]["override"] == {"provider": "claude-api", "model": "claude-sonnet-5-5"}
    ok("default", "set", "google", "gemini-3.8-flash")
    shown = json.loads(ok("agents", "show", "writer", "--json").output)
    assert shown["provider"] == "google" and shown["messages"] == 0 and shown["system"] == "Write well."
    ok("agents", "set", "coder", "--model", "claude-haiku-5-5")
    assert json.loads(ok("agents", "show", "coder", "--json").output)["model"] == "claude-haiku-5-5"
    ok("agents", "set", "coder", "--inherit")
    coder = json.loads(ok("agents", "show", "coder", "--json").output)
    assert coder["inherited"] and coder["provider"] == "google"
    bad = runner.invoke(app, ["agents", "create", "x", "--provider", "opnai"])
    assert bad.exit_code != 0 and "Did you mean openai" in str(bad.exception)


def test_ask_streams_and_history_shows_it() -> None:
    with serving(Server("ol", drip=0.005)) as (srv,):
        _set_url("ollama", srv.url)
        ok("agents", "create", "local", "--provider", "ollama", "--model", "llama3")
        result = ok("ask", "local", "hello there")
    assert result.stdout.strip() == "ol: 1 messages, last: hello there"
    history = json.loads(ok("history", "local", "--json").output)
    assert [(m["role"], m["status"]) for m in history] == [("user", "ok"), ("assistant", "ok")]
    assert "ol: 1 messages" in ok("history", "local").output


def _set_url(pid: str, url: str) -> None:
    from ironspire.workspace import Workspace

    ws = Workspace.open()
    ws.set_provider_setting(pid, "base_url", url)
    ws.close()


def test_ask_warns_first_when_the_provider_is_unhealthy() -> None:
    _set_url("ollama", f"http://127.0.0.1:{refused_port()}")
    ok("agents", "create", "local", "--provider", "ollama", "--model", "llama3")
    result = runner.invoke(app, ["ask", "local", "hi"])
    assert result.exit_code != 0
    assert "warning: ollama is unreachable" in result.stderr
    assert "cannot connect" in str(result.exception)
    listed = json.loads(ok("agents", "list", "--json", "--check").output)
    assert listed[0]["warning"].startswith("ollama is unreachable")
    assert json.loads(ok("history", "local", "--json", "--all").output)[0]["status"] == "unanswered"


def test_chat_switches_provider_and_keeps_history(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-key-000")
    with serving(Server("ol"), Server("an")) as (ol, an):
        _set_url("ollama", ol.url)
        _set_url("claude-api", an.url)
        ok("agents", "create", "nomad", "--provider", "ollama", "--model", "llama3")
        result = ok("chat", "nomad", input="hello\n/switch claude-api claude-haiku-5-5\nagain\n/exit\n")
    assert "ol: 1 messages, last: hello" in result.stdout
    assert "history kept: 2 messages" in result.stdout
    assert "an: 3 messages, last: again" in result.stdout
    history = json.loads(ok("history", "nomad", "--json").output)
    assert [m["provider"] for m in history if m["role"] == "assistant"] == ["ollama", "claude-api"]


def test_analytics_json_and_csv(tmp_path: Path) -> None:
    with serving(Server("ol")) as (srv,):
        _set_url("ollama", srv.url)
        ok("agents", "create", "a", "--provider", "ollama", "--model", "llama3")
        ok("ask", "a", "one", "--no-check")
        ok("ask", "a", "two", "--no-check")
    data = json.loads(ok("analytics", "--json", "--by", "provider", "--period", "24h").output)
    assert data["kpis"]["turns"] == 2 and data["kpis"]["total_spend_usd"] == 0
    assert data["by_provider"][0]["provider"] == "ollama" and data["by_provider"][0]["input_tokens"] == 60
    session = json.loads(ok("analytics", "--json", "--period", "session").output)
    assert session["kpis"]["turns"] == 1  # each `ask` is its own session: the latest one
    out = tmp_path / "turns.csv"
    ok("analytics", "--csv", str(out), "--raw")
    assert out.read_text().splitlines()[0].startswith("at,agent,provider,model,outcome")
    assert len(out.read_text().splitlines()) == 3
    human = ok("analytics", "--by", "model").output
    assert "ollama" in human and "turns 2" in human
    assert runner.invoke(app, ["analytics", "--period", "forever"]).exit_code != 0


def test_export_backup_import_hold_no_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ironspire.workspace import Workspace

    canary = "sk-canary-cli-00112233445566"
    ws = Workspace.open()
    ws.credentials.set("openai", "api_key", canary)
    ws.close()
    ok("default", "set", "openai", "gpt-4.1")
    ok("agents", "create", "a", "--system", "sys")
    exported, backed = tmp_path / "p.json", tmp_path / "p.db"
    ok("export", str(exported), "--with-conversations")
    ok("backup", str(backed))
    for f in (exported, backed):
        assert canary.encode() not in f.read_bytes()
    monkeypatch.setenv("IRONSPIRE_HOME", str(tmp_path / "second"))
    assert "1 agents" in ok("import", str(exported), "--yes").output
    assert json.loads(ok("agents", "show", "a", "--json").output)["system"] == "sys"
    monkeypatch.setenv("IRONSPIRE_HOME", str(tmp_path / "third"))
    ok("import", str(backed), "--yes")
    assert json.loads(ok("default", "show", "--json").output)["model"] == "gpt-4.1"


def test_cli_start_does_not_import_the_database_stack() -> None:
    code = "import sys, ironspire.cli.app; print(any(m.startswith(('sqlalchemy', 'alembic')) for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
