"""`ironspire db copy`: a workspace moves SQLite -> PostgreSQL -> SQLite with every row, the
same counts and checksums at each step, ids and order kept, and a PostgreSQL workspace backs up
to (and restores from) the same single-file backup as a SQLite one."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ironspire.cli.app import app
from ironspire.errors import ConfigurationError
from ironspire.messages import Message
from ironspire.store import copy, engines
from ironspire.workspace import Workspace
from support.memory_keyring import use_memory_keyring
from workspace.conftest import FakeHealth
from workspace.loopback import Server, serving

runner = CliRunner()


@pytest.fixture
def keyring(monkeypatch: pytest.MonkeyPatch) -> Any:
    yield from use_memory_keyring(monkeypatch)


def _open(home: Path, url: str | None = None) -> Workspace:
    return Workspace.open(home, health=FakeHealth, database_url=url)


async def _fill(ws: Workspace) -> None:
    """Configuration of every kind, two agents with real turns (a failed one too), and a
    ledger that spans months (older rows land in their own partitions on PostgreSQL)."""
    with serving(Server("ol")) as (srv,):
        ws.set_provider_setting("ollama", "base_url", srv.url)
        ws.set_default("ollama", "llama3")
        ws.set_setting("degrade_images", "omit")
        await ws.disable("groq")
        coder = ws.create_agent("coder", system="terse")
        ws.create_agent("helper", provider="ollama", model="llama3")
        for text in ("one", "two", "ünïcode ✓ \"quoted\" {json}"):
            await coder.send(text)
        await ws.agent("helper").send("hi")
        ws.set_provider_setting("ollama", "base_url", "http://127.0.0.1:9/")
        with pytest.raises(Exception, match="connect"):
            await ws.agent("helper").send("lost")  # unanswered, and an error row in the ledger
    ws.store.insert_usage([{"agent": "coder", "at": 1_700_000_000.123456 + i * 86400 * 20, "session": "old",
                            "provider": "openai", "model": "gpt-4.1", "input_tokens": i, "output_tokens": 1,
                            "cost_usd": 0.25, "api_cost_usd": 0.25, "latency_s": 0.5, "outcome": "ok",
                            "streamed": i % 2,
                            # a fallback's row (its turn, its place, the route it stood in for) moves too
                            **({"turn": 3, "attempt": 1, "fallback_from": "ollama/llama3"} if i == 0 else {})}
                           for i in range(6)])


async def _moved(tmp_path: Path, pg_url: str) -> Workspace:
    """A filled SQLite workspace copied into ``pg_url``, opened there from another home."""
    ws = _open(tmp_path / "laptop")
    await _fill(ws)
    ws.close()
    copy.copy(engines.parse(f"sqlite:///{tmp_path / 'laptop' / 'ironspire.db'}"), engines.parse(pg_url))
    return _open(tmp_path / "server", pg_url)


def _view(ws: Workspace) -> dict[str, Any]:
    """What a user sees of a workspace, engine aside."""
    return {
        "agents": [(a.name, a.system, a.own_provider, a.own_model) for a in ws.agents()],
        "transcripts": {a.name: [(e.message.role, e.message.text, e.status) for e in a.transcript()]
                        for a in ws.agents()},
        "default": ws.default, "images": ws.setting("degrade_images"), "groq": ws.is_enabled("groq"),
        # times to the microsecond: timestamptz's resolution, finer than the clock that made them
        "ledger": [{**r, "at": copy._microseconds(r["at"])} for r in ws.analytics.turns()],
        "summary": ws.analytics.summary("agent"),
    }


async def test_sqlite_to_postgresql_and_back_keeps_every_row(
        keyring: Any, tmp_path: Path, postgres_server: Any) -> None:
    ws = _open(tmp_path / "laptop")
    await _fill(ws)
    before = _view(ws)
    ws.close()
    sqlite_url = f"sqlite:///{tmp_path / 'laptop' / 'ironspire.db'}"
    pg_url = postgres_server.create_database()  # empty, never migrated: the copy migrates it

    result = runner.invoke(app, ["--database", pg_url, "db", "copy", "--from", sqlite_url])  # into the current one
    assert result.exit_code == 0, result.output
    assert "row counts and checksums match" in " ".join(result.output.split())
    source_sums = copy.checksums(engines.parse(sqlite_url))
    assert copy.checksums(engines.parse(pg_url)) == source_sums
    assert source_sums["messages"].rows == 9 and source_sums["usage"].rows == 11
    assert [(r["attempt"], r["fallback_from"]) for r in before["ledger"] if r["attempt"]] == [(1, "ollama/llama3")]
    assert all(r["turn"] is not None for r in before["ledger"] if r["session"] != "old")

    team = _open(tmp_path / "server", pg_url)
    assert _view(team) == before
    team.close()

    back = tmp_path / "back" / "ironspire.db"
    result = runner.invoke(app, ["db", "copy", "--from", pg_url, "--to", f"sqlite:///{back}"])
    assert result.exit_code == 0, result.output
    assert copy.checksums(engines.parse(f"sqlite:///{back}")) == source_sums
    returned = _open(back.parent)
    assert _view(returned) == before
    returned.close()


async def test_the_copy_carries_on_where_the_source_left_off(keyring: Any, tmp_path: Path, pg_url: str) -> None:
    team = await _moved(tmp_path, pg_url)
    try:
        with serving(Server("ol")) as (srv,):
            team.set_provider_setting("ollama", "base_url", srv.url)
            reply = await team.agent("coder").send("four")
            # the history that reached the provider is the copied one, in order (ids were kept):
            # the system prompt, three turns, the new message
            assert reply.text == "ol: 8 messages, last: four"
            new = team.create_agent("newcomer")  # sequences were moved past the copied ids
            assert new.id > max(a.id for a in team.agents() if a.name != "newcomer")
    finally:
        team.close()


def test_a_target_that_holds_a_workspace_is_refused_unless_replaced(keyring: Any, tmp_path: Path,
                                                                     pg_url: str) -> None:
    ws = _open(tmp_path / "a")
    ws.create_agent("from-a")
    ws.close()
    engines.upgrade_url(pg_url)
    other = _open(tmp_path / "b", pg_url)
    other.create_agent("already-here")
    other.close()
    source = engines.parse(f"sqlite:///{tmp_path / 'a' / 'ironspire.db'}")
    with pytest.raises(ConfigurationError, match="already holds a workspace; nothing was copied"):
        copy.copy(source, engines.parse(pg_url))
    result = runner.invoke(app, ["--database", pg_url, "agents", "list", "--json"])
    assert [a["name"] for a in json.loads(result.output)] == ["already-here"]
    copy.copy(source, engines.parse(pg_url), replace=True)
    result = runner.invoke(app, ["--database", pg_url, "agents", "list", "--json"])
    assert [a["name"] for a in json.loads(result.output)] == ["from-a"]
    with pytest.raises(ConfigurationError, match="same database"):
        copy.copy(engines.parse(pg_url), engines.parse(pg_url))


def test_db_upgrade_and_status_on_the_command_line(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IRONSPIRE_DATABASE_URL", pg_url)
    refused = runner.invoke(app, ["agents", "list"])
    assert refused.exit_code != 0 and "ironspire db upgrade" in str(refused.exception)
    done = runner.invoke(app, ["db", "upgrade"])
    assert done.exit_code == 0 and "from schema none to" in " ".join(done.output.split()), done.output
    again = runner.invoke(app, ["db", "upgrade"])
    assert "already at schema" in " ".join(again.output.split())
    status = runner.invoke(app, ["db", "status", "--json"])
    record = json.loads(status.output)
    assert record["engine"] == "postgresql" and record["revision"] == record["head"]
    assert record["rows"]["agents"] == 0 and record["rows"]["revision"] == 1
    neither = runner.invoke(app, ["db", "copy"])
    assert neither.exit_code != 0 and "--to URL" in str(neither.exception)
    bad = runner.invoke(app, ["--database", "mysql://x/y", "db", "status"])
    assert bad.exit_code != 0 and "does not support" in str(bad.exception)


async def test_a_postgresql_workspace_backs_up_to_one_file_and_restores_from_it(
        keyring: Any, tmp_path: Path, postgres_server: Any) -> None:
    first, second = postgres_server.create_database(), postgres_server.create_database()
    for url in (first, second):
        engines.upgrade_url(url)
    ws = _open(tmp_path / "one", first)
    await _fill(ws)
    before = _view(ws)
    backup = ws.backup(tmp_path / "state.db")
    ws.close()
    assert backup.read_bytes()[:16] == b"SQLite format 3\x00"

    other = _open(tmp_path / "two", second)
    other.create_agent("to-be-replaced")
    other.store.replace_history(other.agent("to-be-replaced").id, [("user", Message.user("x").to_json())])
    other.import_(backup)
    assert _view(other) == before
    other.close()


async def test_locks_still_serialise_turns_after_a_copy(keyring: Any, tmp_path: Path, pg_url: str) -> None:
    team = await _moved(tmp_path, pg_url)
    try:
        with serving(Server("ol", drip=0.01)) as (srv,):
            team.set_provider_setting("ollama", "base_url", srv.url)
            agent = team.agent("coder")
            await asyncio.gather(*(agent.send(f"t{i}") for i in range(4)))
        history = agent.history
        for index in range(1, len(history), 2):  # each reply saw the system prompt and all before it
            assert history[index].text.startswith(f"ol: {index + 1} messages")
    finally:
        team.close()
