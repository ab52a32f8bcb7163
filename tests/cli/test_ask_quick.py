"""`ironspire ask AGENT MESSAGE` is answered by the entry point before Typer, Click and Rich load
(they were a third of the time to the reply's first byte), and says exactly what the full CLI
says: the same reply, warnings, errors and exit codes, in real processes against a real
loopback server. Anything else (other options, stdin, help, a message to refuse) goes to the
full CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ironspire.catalog.providers import CustomEndpoint
from ironspire.workspace import Workspace
from workspace.loopback import Server, refused_port, serving

FRAMEWORK = ("typer", "click", "rich")
#: the record classes of every page (~15-20 ms to build): a plain `ask` prints only one-line
#: notices and must not pay for them
RECORDS = ("ironspire.views.records",)

#: argv through the entry point (``ironspire``), or through the Typer app alone; prints what loaded
_RUN = """
import atexit, json, sys
full = sys.argv[1] == "full"
sys.argv = ["ironspire", *sys.argv[2:]]
atexit.register(lambda: print(json.dumps(sorted({{m.split(".")[0] for m in sys.modules}} & set({framework!r}))
                                         + sorted(set(sys.modules) & set({records!r}))), file=sys.stderr))
if full:
    from ironspire.cli.app import main
else:
    from ironspire.cli import main
main()
"""


def _ask(home: Path, way: str, *args: str, stdin: str | None = None) -> tuple[int, str, str, list[str]]:
    code = _RUN.format(framework=FRAMEWORK, records=RECORDS)
    done = subprocess.run([sys.executable, "-c", code, way, *args], input=stdin, capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, IRONSPIRE_HOME=str(home), COLUMNS="200"))
    *said, loaded = done.stderr.strip().splitlines() or ["[]"]
    return done.returncode, done.stdout, "\n".join(said), json.loads(loaded)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def _prepare(home: Path, url: str) -> None:
    ws = Workspace.open(home)
    try:
        spec = ws.add_custom_endpoint(CustomEndpoint("loop", url + "/v1", "m1"))
        for name in ("a", "b"):
            ws.create_agent(name, spec.id, "m1")
    finally:
        ws.close()


def test_a_plain_ask_loads_no_cli_framework_and_answers_as_the_full_cli(home: Path) -> None:
    with serving(Server("lb")) as (server,):
        _prepare(home, server.url)
        quick = _ask(home, "entry", "ask", "a", "hello")
        full = _ask(home, "full", "ask", "b", "hello")
        no_check = _ask(home, "entry", "ask", "--no-check", "a", "again")
    assert quick[:3] == (0, "lb: 1 messages, last: hello\n", "") and quick[3] == []
    assert full[:3] == quick[:3] and "typer" in full[3]  # the Typer app: the same answer
    assert no_check[:3] == (0, "lb: 3 messages, last: again\n", "") and no_check[3] == []
    ws = Workspace.open(home)
    try:
        assert [m.text for m in ws.agent("a").history] == ["hello", "lb: 1 messages, last: hello", "again",
                                                           "lb: 3 messages, last: again"]
    finally:
        ws.close()


def test_errors_and_warnings_are_the_full_clis(home: Path) -> None:
    _prepare(home, f"http://127.0.0.1:{refused_port()}")
    for args in (["ask", "nobody", "hello"], ["ask", "a", "hello"], ["ask", "--no-check", "a", "hello"]):
        quick, full = _ask(home, "entry", *args), _ask(home, "full", *args)
        assert quick[:3] == full[:3], args
        assert quick[0] == 1 and "error:" in quick[2]
    assert "no agent named 'nobody'" in _ask(home, "entry", "ask", "nobody", "hello")[2]
    unreachable = _ask(home, "entry", "ask", "a", "hello")[2]
    assert unreachable.startswith("warning: ") and "cannot connect" in unreachable


def test_ask_probes_first_unless_the_provider_was_found_reachable_within_the_health_interval(home: Path) -> None:
    """A probe is a round trip before the one that matters: `ask` skips it while the last
    request or check (kept in the home between commands) found the provider reachable within
    ``health_interval`` seconds, and probes when that is older or the provider was unhealthy."""
    with serving(Server("lb")) as (server,):
        _prepare(home, server.url)
        first = _ask(home, "entry", "ask", "a", "one")
        after_first = len(server.probes)
        second = _ask(home, "entry", "ask", "a", "two")
        third = _ask(home, "full", "ask", "b", "three")
        after_third = len(server.probes)
        ws = Workspace.open(home)
        try:
            ws.set_setting("health_interval", 0.001)
        finally:
            ws.close()
        fourth = _ask(home, "entry", "ask", "a", "four")
        after_fourth = len(server.probes)
    assert [r[0] for r in (first, second, third, fourth)] == [0, 0, 0, 0]
    assert second[1] == "lb: 3 messages, last: two\n"
    assert after_first == 1  # nothing known yet: probed
    assert after_third == 1  # the turns before found it reachable moments ago, in either CLI path
    assert after_fourth == 2  # older than health_interval: probed again


def test_ask_probes_again_after_the_provider_was_found_unhealthy(home: Path) -> None:
    with serving(Server("lb", status=401)) as (server,):
        _prepare(home, server.url)
        first = _ask(home, "entry", "ask", "a", "one")
        second = _ask(home, "entry", "ask", "a", "two")
    assert first[0] == second[0] == 1
    assert "HTTP 401" in first[2] and "HTTP 401" in second[2]
    assert len(server.probes) == 2  # the rejected key left the provider unhealthy: the next ask checks again


@pytest.mark.parametrize("args", [["ask", "a", "   "], ["ask", "--help"], ["ask", "a"], ["ask", "a", "-"],
                                  ["ask", "a", "hi", "--json"]])
def test_anything_else_goes_to_the_full_cli(tmp_path: Path, args: list[str]) -> None:
    with serving(Server("lb")) as (server,):
        for home in (tmp_path / "one", tmp_path / "two"):
            _prepare(home, server.url)
        code, out, said, loaded = _ask(tmp_path / "one", "entry", *args, stdin="from stdin\n")
        full = _ask(tmp_path / "two", "full", *args, stdin="from stdin\n")
    assert "typer" in loaded  # parsed (and answered) by Typer
    assert (code, out, said) == full[:3]
    if args[-1] == "-":
        assert code == 0 and out == "lb: 1 messages, last: from stdin\n"
    elif args[1] != "--help":
        assert code == 2  # a usage error, Typer's own wording
