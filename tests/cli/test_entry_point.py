"""The installed `ironspire` command: `--version` is answered before the Typer app loads, and says
exactly what the app's own `--version` says; every other command still reaches the app."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from ironspire.cli.app import app


def _run(*args: str, code: str = "from ironspire.cli import main; main()") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", f"import sys; sys.argv = ['ironspire', *{list(args)!r}]; {code}"],
                          capture_output=True, text=True, timeout=60)


def test_version_is_the_apps_own_and_loads_no_cli_framework() -> None:
    fast = _run("--version", code="from ironspire.cli import main; main(); "
                                  "print(sorted({m.split('.')[0] for m in sys.modules} & {'typer', 'click', 'rich'}))")
    assert fast.returncode == 0, fast.stderr
    version, loaded = fast.stdout.splitlines()
    assert version == CliRunner().invoke(app, ["--version"]).output.strip()
    assert loaded == "[]"


def test_other_commands_reach_the_typer_app() -> None:
    shown = _run("--help")
    assert shown.returncode == 0, shown.stderr
    assert "providers" in shown.stdout and "ask" in shown.stdout
    assert "providers" in _run("providers", "--help").stdout
