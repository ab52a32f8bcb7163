"""A turn starts without the database toolkit: on an up-to-date SQLite workspace, opening it,
checking the provider's health, reading the agent, its history and the spend a budget counts,
and running a turn (sent and streamed) load neither SQLAlchemy nor Alembic, nor pydantic (whose
message adapter a fresh process would build at its first commit or history read, ~75 ms), in a
real process against a real loopback server; ``ironspire ask`` too. The same statements on PostgreSQL run
through SQLAlchemy (the store's tests run on both engines)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ironspire.catalog.providers import CustomEndpoint
from ironspire.workspace import Workspace
from workspace.loopback import Server, serving

if TYPE_CHECKING:
    from ironspire.store.ledger import UsageFilter

HEAVY = ("sqlalchemy", "alembic", "pydantic")

_TURN = """
import asyncio, json, sys
from ironspire import Workspace

async def main():
    ws = Workspace.open(sys.argv[1])
    try:
        agent = ws.agent("a")
        await ws.health.check([agent.route.provider])
        budget = ws.budget_state()
        sent = await agent.send("first")
        streamed = "".join([e.text async for e in agent.stream("second") if type(e).__name__ == "TextDelta"])
        return {"sent": sent.text, "streamed": streamed, "history": len(agent.history),
                "spent": None if budget is None else budget.spent}
    finally:
        await ws.aclose()

out = asyncio.run(main())
out["loaded"] = sorted({m.split(".")[0] for m in sys.modules} & {"sqlalchemy", "alembic", "pydantic"})
print(json.dumps(out))
"""


def _prepared(home: Path, server: Server) -> None:
    ws = Workspace.open(home)
    try:
        spec = ws.add_custom_endpoint(CustomEndpoint("loop", server.url + "/v1", "m1"))
        ws.create_agent("a", spec.id, "m1")
        ws.set_budget(100.0)
    finally:
        ws.close()


def test_a_turn_on_an_up_to_date_sqlite_workspace_loads_no_sqlalchemy(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with serving(Server("lb")) as (server,):
        _prepared(home, server)
        runs = [subprocess.run([sys.executable, "-c", _TURN, str(home)], capture_output=True, text=True, timeout=120,
                               env=dict(os.environ, IRONSPIRE_HOME=str(home))) for _ in range(2)]
    for done in runs:
        assert done.returncode == 0, done.stderr
    out, again = (json.loads(done.stdout.strip().splitlines()[-1]) for done in runs)
    assert out["loaded"] == []
    assert out["sent"] == "lb: 1 messages, last: first"
    assert out["streamed"] == "lb: 3 messages, last: second"
    assert out["history"] == 4 and out["spent"] == 0.0
    # a second process reads the four stored messages back (and sends them) without pydantic either
    assert again["loaded"] == []
    assert again["sent"] == "lb: 5 messages, last: first" and again["history"] == 8
    ws = Workspace.open(home)  # what the fast path wrote is what SQLAlchemy reads
    try:
        assert [m.role for m in ws.agent("a").history] == ["user", "assistant"] * 4
        assert [r["outcome"] for r in ws.store.usage_rows(_everything())] == ["ok"] * 4
        assert [t["state_to"] for t in ws.store.ledger.transitions(_everything())] == ["reachable"]
    finally:
        ws.close()


@pytest.mark.parametrize("database", [False, True], ids=["default", "--database"])
def test_ironspire_ask_loads_no_sqlalchemy(tmp_path: Path, database: bool) -> None:
    home = tmp_path / "home"
    argv = ["--database", f"sqlite:///{home / 'ironspire.db'}"] if database else []
    # Typer (0.29) coerces a given option's value through pydantic, so with --database the CLI
    # framework loads it; the library's turn does not (the test above)
    heavy = ("sqlalchemy", "alembic") if database else HEAVY
    code = (f"import atexit, sys; sys.argv = ['ironspire', *{argv!r}, 'ask', 'a', 'hello']; "
            "atexit.register(lambda: print(sorted({m.split('.')[0] for m in sys.modules} & "
            f"set({heavy!r})), file=sys.stderr)); "
            "from ironspire.cli import main; main()")
    with serving(Server("lb")) as (server,):
        _prepared(home, server)
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                              env=dict(os.environ, IRONSPIRE_HOME=str(home)))
    assert done.returncode == 0, done.stderr
    assert done.stdout == "lb: 1 messages, last: hello\n"
    assert done.stderr.strip().splitlines()[-1] == "[]"


def test_a_database_behind_head_is_migrated_with_alembic_on_open(tmp_path: Path) -> None:
    """The fast path reads the revision only: a database at an older revision is still migrated."""
    from workspace.test_migrations import _initial_database

    home = tmp_path / "home"
    home.mkdir()
    _initial_database(home / "ironspire.db")
    code = ("import sys; from ironspire import Workspace; ws = Workspace.open(sys.argv[1]); "
            "print(ws.store.schema_revision(), 'alembic' in sys.modules); ws.close()")
    done = subprocess.run([sys.executable, "-c", code, str(home)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    from ironspire.store import migrations

    assert done.stdout.split() == [migrations.HEAD, "True"]


def _everything() -> UsageFilter:
    from ironspire.store.ledger import UsageFilter

    return UsageFilter()
