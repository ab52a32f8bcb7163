"""The CLI's listings are how people (and scripts, through --json) see the catalogue."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

from typer.testing import CliRunner

from ironspire import __version__
from ironspire.cli.app import app

runner = CliRunner()


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_models_list_json_has_46_builtins_with_every_field_filled() -> None:
    result = runner.invoke(app, ["models", "list", "--json"])
    assert result.exit_code == 0, result.output
    models = json.loads(result.output)
    builtins = [m for m in models if m["source"] == "builtin"]
    assert len(builtins) == 46
    assert Counter(m["provider"] for m in builtins)["bedrock"] == 11
    for m in builtins:
        for key in ("id", "display_name", "context_window", "max_output_tokens", "tools", "vision", "reasoning",
                    "streaming", "price"):
            assert m[key] is not None, (m["key"], key)
        assert set(m["price"]) == {"input", "output", "cache_read", "cache_write"}


def test_models_list_filters() -> None:
    out = json.loads(runner.invoke(app, ["models", "list", "--provider", "deepseek", "--json"]).output)
    assert [m["id"] for m in out] == ["deepseek-flash", "deepseek-v4-pro"]
    out = json.loads(runner.invoke(app, ["models", "list", "--capability", "vision", "--json"]).output)
    assert out and all(m["vision"] for m in out)
    bad = runner.invoke(app, ["models", "list", "--capability", "telepathy"])
    assert bad.exit_code != 0


def test_models_table_shows_context_as_people_say_it() -> None:
    result = runner.invoke(app, ["models", "list", "--provider", "claude-api"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "200K" in result.output and "1M" in result.output


def test_providers_list_json_groups_and_auth() -> None:
    result = runner.invoke(app, ["providers", "list", "--json"])
    assert result.exit_code == 0, result.output
    providers = json.loads(result.output)
    builtins = [p for p in providers if p["group"] != "custom"]
    assert len(builtins) == 13
    assert [p["group"] for p in builtins] == ["primary"] * 4 + ["cloud"] * 3 + ["openai-compatible"] * 6
    bedrock = next(p for p in providers if p["id"] == "bedrock")
    assert [f["name"] for f in bedrock["auth"]] == ["access_key_id", "secret_access_key", "session_token", "region"]


def test_unknown_provider_is_a_clear_error_not_a_traceback() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ironspire.cli", "models", "list", "--provider", "opnai"],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 1
    assert "unknown provider 'opnai'" in proc.stderr and "openai" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_import_is_light() -> None:
    """`import ironspire` must not drag in the HTTP, ORM or CLI stacks (start-up time)."""
    heavy = "('httpx', 'httpx2', 'aiohttp', 'sqlalchemy', 'pydantic', 'typer', 'rich')"
    code = f"import sys, ironspire; print(','.join(m for m in {heavy} if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == ""
