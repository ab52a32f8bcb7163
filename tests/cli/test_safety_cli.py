"""Issue 17 from the command line: `backup`/`export` onto the live database are refused,
`import` shows what it changes and changes nothing without a yes."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ironspire.cli.app import app
from support.cli import ok, runner
from support.memory_keyring import MemoryKeyring, use_memory_keyring


@pytest.fixture(autouse=True)
def keyring(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[MemoryKeyring]]:
    yield from use_memory_keyring(monkeypatch)


def test_backup_and_export_in_the_home_refuse_the_live_database(isolated_env: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    ok("agents", "create", "kept")
    monkeypatch.chdir(isolated_env)
    for command in ("backup", "export"):
        result = runner.invoke(app, [command, "ironspire.db"])
        assert result.exit_code != 0 and "workspace" in str(result.exception)
    assert [a["name"] for a in json.loads(ok("agents", "list", "--json").output)] == ["kept"]


def test_import_asks_and_changes_nothing_without_yes(isolated_env: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    ok("agents", "create", "kept")
    backup = tmp_path / "b.db"
    ok("backup", str(backup))
    ok("agents", "create", "later")
    refused = runner.invoke(app, ["import", str(backup)], input="n\n")
    assert refused.exit_code == 1 and "replaces the whole workspace" in refused.output
    assert "Nothing was changed" in refused.output
    assert len(json.loads(ok("agents", "list", "--json").output)) == 2
    done = ok("import", str(backup), input="y\n")
    assert "The replaced state is kept in" in done.output
    assert [a["name"] for a in json.loads(ok("agents", "list", "--json").output)] == ["kept"]
    assert len(os.listdir(isolated_env / "backups")) == 1


def test_import_warns_that_keys_follow_a_new_base_url(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"format": "ironspire-export", "version": 1, "settings": {},
                                "providers": {"openai": {"settings": {"base_url": "https://evil.example"}}},
                                "custom_endpoints": [], "agents": []}))
    refused = runner.invoke(app, ["import", str(path)], input="n\n")
    assert refused.exit_code == 1
    assert "WARNING: openai base URL https://evil.example: its stored API key will be sent to" in refused.output
    assert "evil" not in ok("providers", "list").output


def test_names_with_markup_and_escapes_never_reach_the_terminal_as_such() -> None:
    from ironspire.workspace import Workspace

    ok("agents", "create", "[/]")
    ok("agents", "create", "[bold]x")
    ws = Workspace.open()  # a name stored before names were checked: shown, never obeyed
    ws.store.create_agent("old\x1b]0;pwned\x07\x1b[2J", None, None, None)
    ws.close()
    listed = ok("agents", "list").output
    assert "[/]" in listed and "[bold]x" in listed
    assert "\x1b" not in listed and "\x07" not in listed and "\\x1b]0;pwned" in listed
    shown = ok("agents", "show", "[bold]x").output
    assert shown.startswith("[bold]x")
    refused = runner.invoke(app, ["agents", "create", "evil\x1b[31m"])
    assert refused.exit_code != 0 and "control character U+001B" in str(refused.exception)


def test_an_error_carrying_markup_is_printed_verbatim() -> None:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "ironspire.cli", "agents", "show", "[/]oops\x1b[31m"],
                         capture_output=True, text=True)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "[/]oops" in out.stderr and "\x1b[31m" not in out.stderr


def test_health_state_and_csv_written_by_commands_are_owner_only(isolated_env: Path, tmp_path: Path) -> None:
    import stat

    from workspace.loopback import refused_port

    old = os.umask(0o022)
    try:
        ok("providers", "set", "ollama", "base_url", f"http://127.0.0.1:{refused_port()}")
        runner.invoke(app, ["providers", "check", "ollama"])
        ok("analytics", "--csv", str(tmp_path / "t.csv"), "--raw")
    finally:
        os.umask(old)
    assert stat.S_IMODE(isolated_env.stat().st_mode) == 0o700
    for path in (isolated_env / "health.json", isolated_env / "ironspire.db", tmp_path / "t.csv"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
