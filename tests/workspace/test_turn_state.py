"""What a turn reads from memory and writes in one go.

Provider settings and the enabled flag are held in memory so a turn runs no query before its
request; whatever changes them (the setters, removing a custom endpoint, restoring a backup)
must leave the workspace using exactly what is stored, which a freshly opened workspace reads
from the file. A turn's messages and ledger row are one transaction: if the write fails, none
of them is stored and the history does not move.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ironspire.catalog.providers import CustomEndpoint
from ironspire.errors import TurnNotSaved
from ironspire.workspace import Workspace
from workspace.loopback import Server, serving

PIDS = ("openai", "ollama", "groq", "custom-gw")


def _state(ws: Workspace) -> dict[str, tuple[bool, dict[str, str]]]:
    return {pid: (ws.is_enabled(pid), ws.provider_settings(pid)) for pid in PIDS}


def _matches_the_file(ws: Workspace, open_ws: Any) -> None:
    reopened: Workspace = open_ws(ws.home)
    try:
        assert _state(ws) == _state(reopened)
    finally:
        reopened.close()


async def test_settings_and_enabled_follow_every_change(ws: Workspace, open_ws: Any) -> None:
    ws.set_provider_setting("openai", "base_url", "http://127.0.0.1:9/v1")
    ws.set_provider_setting("openai", "timeout", "30")
    await ws.disable("ollama")
    assert ws.target("openai").base_url == "http://127.0.0.1:9/v1" and ws.target("openai").timeout == 30.0
    assert not ws.is_enabled("ollama") and ws.is_enabled("groq")
    _matches_the_file(ws, open_ws)

    ws.set_provider_setting("openai", "timeout", None)
    await ws.enable("ollama")
    assert ws.provider_settings("openai") == {"base_url": "http://127.0.0.1:9/v1"}
    assert ws.target("openai").timeout == 120.0 and ws.is_enabled("ollama")
    _matches_the_file(ws, open_ws)

    ws.add_custom_endpoint(CustomEndpoint("gw", "http://127.0.0.1:9/v1", "m"))
    ws.set_provider_setting("custom-gw", "timeout", "5")
    await ws.disable("custom-gw")
    _matches_the_file(ws, open_ws)
    ws.remove_custom_endpoint("custom-gw")  # its settings and state go with it...
    ws.add_custom_endpoint(CustomEndpoint("gw", "http://127.0.0.1:9/v1", "m"))
    assert ws.is_enabled("custom-gw") and ws.provider_settings("custom-gw") == {}  # ...and do not come back
    _matches_the_file(ws, open_ws)


async def test_a_returned_settings_dict_cannot_change_the_workspace(ws: Workspace) -> None:
    ws.set_provider_setting("openai", "base_url", "http://127.0.0.1:9/v1")
    ws.provider_settings("openai")["base_url"] = "http://elsewhere"
    assert ws.target("openai").base_url == "http://127.0.0.1:9/v1"


@pytest.mark.sqlite_only("a second workspace in another home; PostgreSQL: tests/store/test_copy.py")
async def test_restoring_a_backup_brings_its_provider_state(ws: Workspace, open_ws: Any, tmp_path: Path) -> None:
    ws.set_provider_setting("openai", "base_url", "http://127.0.0.1:9/v1")
    await ws.disable("ollama")
    copy = ws.backup(tmp_path / "state.db")

    other: Workspace = open_ws(tmp_path / "other")
    other.set_provider_setting("openai", "base_url", "http://127.0.0.1:8/v1")
    other.set_provider_setting("groq", "timeout", "7")
    await other.disable("groq")
    other.import_(copy)
    assert other.target("openai").base_url == "http://127.0.0.1:9/v1"
    assert other.provider_settings("groq") == {} and other.is_enabled("groq")
    assert not other.is_enabled("ollama")
    _matches_the_file(other, open_ws)
    other.close()


async def test_a_turn_whose_write_fails_stores_nothing(ws: Workspace, tmp_path: Path) -> None:
    with serving(Server("ol")) as (srv,):
        ws.set_provider_setting("ollama", "base_url", srv.url)
        agent = ws.create_agent("x", provider="ollama", model="llama3")
        await agent.send("one")
        # the ledger row is written after both messages: a failure there must take them back too
        with _failing_ledger(ws, "disk full") as (failure, count):
            with pytest.raises(TurnNotSaved, match="disk full") as failed:  # said clearly, the cause kept
                await agent.send("two")
            assert isinstance(failed.value.__cause__, failure)
            assert agent.history[-1].text == "ol: 1 messages, last: one"
            assert count("messages") == 2
            assert count("usage") == 1
        reply = await agent.send("three")  # the connection went back to the pool usable
    assert reply.text == "ol: 3 messages, last: three"
    assert [e.message.text for e in agent.transcript()][::2] == ["one", "three"]
    assert [r["outcome"] for r in ws.analytics.turns()] == ["ok", "ok"]


@contextlib.contextmanager
def _failing_ledger(ws: Workspace, message: str) -> Iterator[tuple[type[BaseException], Callable[[str], int]]]:
    """A trigger that makes every ledger insert fail, on the workspace's own engine, with the
    error that engine's driver raises; yields it and a row counter over a connection of the test's."""
    if ws.path is not None:
        con = sqlite3.connect(ws.path)
        con.execute(f"CREATE TRIGGER no_ledger BEFORE INSERT ON usage BEGIN SELECT RAISE(ABORT, '{message}'); END")
        con.commit()
        try:
            yield sqlite3.IntegrityError, lambda table: int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
            con.execute("DROP TRIGGER no_ledger")
            con.commit()
        finally:
            con.close()
        return
    import psycopg
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import DatabaseError

    url = make_url(ws.store.url)
    with psycopg.connect(host=url.host, port=url.port, user=url.username, dbname=url.database,
                         autocommit=True) as pg:
        pg.execute(f"CREATE FUNCTION no_ledger() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                   f"RAISE EXCEPTION '{message}'; END $$")
        pg.execute("CREATE TRIGGER no_ledger BEFORE INSERT ON usage FOR EACH ROW EXECUTE FUNCTION no_ledger()")

        def count(table: str) -> int:
            row = pg.execute(f"SELECT count(*) FROM {table}").fetchone()
            assert row is not None
            return int(row[0])

        yield DatabaseError, count
        pg.execute("DROP TRIGGER no_ledger ON usage")


def test_turns_of_many_agents_at_once_each_commit_whole(ws: Workspace) -> None:
    with serving(Server("ol")) as (srv,):
        ws.set_provider_setting("ollama", "base_url", srv.url)
        agents = [ws.create_agent(f"a{i}", provider="ollama", model="llama3") for i in range(12)]

        async def run() -> None:
            await asyncio.gather(*(a.send(f"hi {a.name}") for a in agents))

        asyncio.run(run())
    for a in agents:
        assert [(e.message.role, e.message.text, e.status) for e in a.transcript()] == [
            ("user", f"hi {a.name}", "ok"), ("assistant", f"ol: 1 messages, last: hi {a.name}", "ok")]
    assert sorted(r["agent"] for r in ws.analytics.turns()) == sorted(a.name for a in agents)
