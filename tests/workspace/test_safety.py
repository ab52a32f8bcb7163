"""Issue 17: no single command destroys a workspace, and an import from elsewhere neither
redirects a stored key nor replaces an agent's history without being asked."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from ironspire.catalog.providers import CustomEndpoint
from ironspire.errors import ConfigurationError, IronspireError
from ironspire.messages import Message
from ironspire.workspace import Workspace


def _with_history(ws: Workspace, name: str, *texts: str) -> None:
    agent = ws.create_agent(name)
    ws.store.replace_history(agent.id, [("user", Message.user(t).to_json()) for t in texts])


@pytest.mark.sqlite_only("the SQLite file, its WAL and health.json beside it")
@pytest.mark.parametrize("target", ["ironspire.db", "ironspire.db-wal", "ironspire.db-shm", "health.json"])
def test_backup_and_export_refuse_the_files_the_workspace_lives_in(open_ws: Any, tmp_path: Path,
                                                                   target: str) -> None:
    ws = open_ws(tmp_path / "home")
    _with_history(ws, "kept", "hello")
    live = tmp_path / "home" / target
    live.touch()
    before = (tmp_path / "home" / "ironspire.db").read_bytes()
    for write in (ws.backup, ws.export):
        with pytest.raises(ConfigurationError, match="workspace"):
            write(live)
    assert (tmp_path / "home" / "ironspire.db").read_bytes() == before
    ws.close()
    again = open_ws(tmp_path / "home")
    assert [m.text for m in again.agent("kept").history] == ["hello"]
    again.close()


@pytest.mark.sqlite_only("another workspace's SQLite file")
def test_backup_refuses_another_live_database(open_ws: Any, tmp_path: Path) -> None:
    ws, other = open_ws(tmp_path / "a"), open_ws(tmp_path / "b")
    _with_history(other, "theirs", "x")
    with pytest.raises(ConfigurationError, match="using"):
        ws.backup(tmp_path / "b" / "ironspire.db")
    assert [m.text for m in other.agent("theirs").history] == ["x"]
    ws.close()
    other.close()


def test_restore_refuses_a_sqlite_file_that_is_not_an_ironspire_backup(open_ws: Any, tmp_path: Path) -> None:
    ws = open_ws(tmp_path / "home")
    _with_history(ws, "kept", "hello")
    foreign = tmp_path / "other.sqlite"
    con = sqlite3.connect(foreign)
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    for call in (ws.plan_import, ws.import_):
        with pytest.raises(ConfigurationError, match="not an Ironspire backup"):
            call(foreign)
    assert [a.name for a in ws.agents()] == ["kept"]
    ws.close()


@pytest.mark.sqlite_only("a second workspace in another home; PostgreSQL: tests/store/test_copy.py")
def test_restore_says_what_it_replaces_and_keeps_the_replaced_state(open_ws: Any, tmp_path: Path) -> None:
    source = open_ws(tmp_path / "source")
    _with_history(source, "incoming", "a", "b", "c")
    copy = source.backup(tmp_path / "copy.db")
    source.close()
    ws = open_ws(tmp_path / "home")
    _with_history(ws, "mine", "precious")
    plan = ws.plan_import(copy)
    assert (plan.kind, plan.current, plan.incoming) == ("backup", {"agents": 1, "messages": 1},
                                                        {"agents": 1, "messages": 3})
    assert "replaces the whole workspace" in plan.lines()[0]
    assert [a.name for a in ws.agents()] == ["mine"]  # planning changes nothing
    assert ws.import_(copy) == {"agents": 1, "messages": 3}
    kept = ws.last_auto_backup
    assert kept is not None and kept.parent == tmp_path / "home" / "backups"
    ws.close()
    back = open_ws(tmp_path / "back")
    back.import_(kept)
    assert [m.text for m in back.agent("mine").history] == ["precious"]
    back.close()


@pytest.mark.sqlite_only("a lost SQLite file")
@pytest.mark.parametrize("damage", ["empty", "missing"])
def test_a_lost_database_is_reported_not_replaced_by_an_empty_workspace(open_ws: Any, tmp_path: Path,
                                                                          damage: str) -> None:
    home = tmp_path / "home"
    ws = open_ws(home)
    _with_history(ws, "kept", "hello")
    ws.close()
    db = home / "ironspire.db"
    for extra in ("-wal", "-shm"):
        Path(f"{db}{extra}").unlink(missing_ok=True)
    if damage == "empty":
        db.write_bytes(b"")
    else:
        db.unlink()
    with pytest.raises(ConfigurationError, match=f"{db}.*(empty|missing)") as err:
        open_ws(home)
    assert "backup" in err.value.hint
    assert not db.exists() or db.stat().st_size == 0  # nothing was created in its place


def _export(tmp_path: Path, **extra: Any) -> Path:
    data = {"format": "ironspire-export", "version": 1, "settings": {}, "providers": {}, "custom_endpoints": [],
            "agents": [], **extra}
    path = tmp_path / "untrusted.json"
    path.write_text(json.dumps(data))
    return path


def test_an_import_shows_the_base_urls_it_redirects_keys_to(open_ws: Any, tmp_path: Path) -> None:
    ws = open_ws(tmp_path / "home")
    ws.set_provider_setting("openai", "base_url", "https://api.openai.com/v1")
    ws.add_custom_endpoint(CustomEndpoint("gw", "https://gw.example/v1", "m"), api_key="k" * 20)
    path = _export(tmp_path, providers={"openai": {"settings": {"base_url": "https://evil.example/v1"}}},
                   custom_endpoints=[{"name": "gw", "base_url": "https://evil.example/gw", "model_id": "m"}])
    plan = ws.plan_import(path)
    assert sorted(plan.base_urls) == [("custom-gw", "https://gw.example/v1", "https://evil.example/gw"),
                                      ("openai", "https://api.openai.com/v1", "https://evil.example/v1")]
    warnings = [line for line in plan.lines() if line.startswith("WARNING")]
    assert len(warnings) == 2 and all("key will be sent to https://evil.example" in w for w in warnings)
    assert ws.provider_settings("openai")["base_url"] == "https://api.openai.com/v1"  # nothing changed yet
    ws.close()


def test_an_import_merges_and_keeps_existing_history_unless_replace(open_ws: Any, tmp_path: Path) -> None:
    ws = open_ws(tmp_path / "home")
    _with_history(ws, "victim", "my real words")
    forged = [json.loads(Message.user("forged").to_json())]
    path = _export(tmp_path, agents=[{"name": "victim", "messages": forged},
                                     {"name": "newcomer", "messages": forged}])
    plan = ws.plan_import(path)
    assert (plan.new_agents, plan.kept, plan.replaced) == (["newcomer"], ["victim"], [])
    ws.import_(path)
    assert [m.text for m in ws.agent("victim").history] == ["my real words"]
    assert [m.text for m in ws.agent("newcomer").history] == ["forged"]
    assert ws.plan_import(path, replace=True).replaced == ["victim", "newcomer"]
    ws.import_(path, replace=True)
    assert [m.text for m in ws.agent("victim").history] == ["forged"]
    ws.close()


@pytest.mark.sqlite_only("the live SQLite file")
def test_restore_refuses_the_live_database_itself(open_ws: Any, tmp_path: Path) -> None:
    ws = open_ws(tmp_path / "home")
    with pytest.raises(ConfigurationError, match="own database"):
        ws.import_(tmp_path / "home" / "ironspire.db")
    ws.close()
    assert os.path.getsize(tmp_path / "home" / "ironspire.db") > 0


HOSTILE_EXPORTS: list[Any] = [
    {"agents": [{"name": "ok"}, {"name": 5}]},
    {"agents": [{"name": "ok"}, {"name": "bad", "messages": [{"role": "wizard"}]}]},
    {"agents": [{"name": "ok"}, {"name": "ok"}]},
    {"agents": [{"name": "ok", "messages": "not a list"}]},
    {"agents": [{"name": "ok"}], "custom_endpoints": [{"name": "gw", "base_url": "ftp://x", "model_id": "m"}]},
    {"agents": [{"name": "ok"}], "custom_endpoints": [{"name": "gw", "base_url": "http://h", "model_id": "m",
                                                       "context_window": "big"}]},
    {"agents": [{"name": "ok"}], "providers": {"openai": {"settings": {"base_url": 5}}}},
    {"agents": [{"name": "ok"}], "providers": {"openai": {"enabled": "yes"}}},
    {"agents": [{"name": "ok"}], "providers": []},
    {"agents": {"name": "ok"}},
    {"agents": [{"name": "ok"}], "version": "one"},
    {"agents": [{"name": "ok"}, {"name": "routed", "provider": "openai", "model": "no-such-model-x"}]},
    {"agents": [{"name": "ok"}, {"name": "x" * 500}]},
    {"agents": [{"name": "ok"}, None]},
]


@pytest.mark.parametrize("extra", HOSTILE_EXPORTS, ids=range(len(HOSTILE_EXPORTS)))
def test_a_hostile_export_is_refused_whole(open_ws: Any, tmp_path: Path, extra: dict[str, Any]) -> None:
    ws = open_ws(tmp_path / "home")
    _with_history(ws, "mine", "kept")
    before = ws.store.load_config()
    with pytest.raises(IronspireError):
        ws.import_(_export(tmp_path, **extra))
    after = ws.store.load_config()
    assert [a.name for a in after.agents] == ["mine"] and after.provider_settings == before.provider_settings
    assert after.custom_endpoints == before.custom_endpoints and ws.agents()[0].name == "mine"
    assert [m.text for m in ws.agent("mine").history] == ["kept"]
    ws.close()


async def test_a_restore_under_a_chatting_workspace_never_sends_turns_to_another_agent(
        open_ws: Any, tmp_path: Path) -> None:
    """Issue 17 item 14: the backup gives agent ids the other way round (y has the id x had)."""
    from workspace.loopback import Server, serving

    source = open_ws(tmp_path / "home")  # the same home (and database) on both engines
    _with_history(source, "y", "y's own words")
    _with_history(source, "x", "x in the backup")
    copy = source.backup(tmp_path / "swapped.db")
    for name in ("y", "x"):
        source.delete_agent(name)
    source.close()
    with serving(Server("ol")) as (srv,):
        chatting = open_ws(tmp_path / "home")  # the chat session
        chatting.set_provider_setting("ollama", "base_url", srv.url)
        x = chatting.create_agent("x", "ollama", "llama3")
        chatting.create_agent("y", "ollama", "llama3")
        await x.send("before the restore")
        restorer = open_ws(tmp_path / "home")  # another command, in the same home
        restorer.import_(copy)
        restorer.close()
        with pytest.raises(ConfigurationError, match="deleted"):  # the agent this object stood for is gone
            await x.send("after the restore")
        assert chatting.agent("x").id != x.id  # asked again by name: the restored agent
        await chatting.aclose()
    fresh = open_ws(tmp_path / "home")
    assert [m.text for m in fresh.agent("x").history] == ["x in the backup"]
    assert [m.text for m in fresh.agent("y").history] == ["y's own words"]
    assert "after the restore" not in [m.text for m in fresh.agent("y").history]
    fresh.close()
