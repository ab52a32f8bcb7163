"""`ironspire models list` for people (one readable table per provider, in 80 and 120 columns) and
for scripts (the JSON shape is unchanged), opening the workspace only when the listing needs it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ironspire.catalog.models import Registry
from ironspire.cli.app import app
from ironspire.store.schema import DB_NAME
from support.ollama_fake import closed_port

runner = CliRunner()
BUILTIN_IDS = {m.id for m in Registry()}


@pytest.fixture(autouse=True)
def no_ollama(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{closed_port()}")


def table(columns: int, *args: str) -> list[str]:
    result = runner.invoke(app, ["models", "list", *args], env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()


@pytest.mark.parametrize("columns", [80, 120])
def test_every_model_id_is_whole_and_every_line_fits(columns: int) -> None:
    lines = table(columns)
    assert max(len(line) for line in lines) <= columns
    assert not [line for line in lines if "…" in line]
    first_words = {line.split()[0] for line in lines if line.strip()}
    assert first_words >= BUILTIN_IDS  # each id starts a row, uncut, the longest (41 characters) included
    titles = [line.strip() for line in lines if re.search(r" · \d+ models?$", line.strip())]
    assert titles[:3] == ["Claude SDK  claude-sdk · 6 models", "Claude API  claude-api · 6 models",
                          "OpenAI  openai · 8 models"]
    assert "AWS Bedrock  bedrock · 11 models" in titles and len(titles) == 8
    assert lines[-1] == "Prices in USD per million tokens."


def test_120_columns_keep_one_line_per_model_with_capability_and_note_columns() -> None:
    lines = table(120, "--provider", "openai")
    assert re.split(r"\s{2,}", lines[1].strip()) == ["model", "context", "out", "can", "$ in / out",
                                                     "cache r / w", "note"]
    rows = {line.split()[0]: re.split(r"\s{2,}", line.strip()) for line in lines[3:] if line.strip()}
    assert rows["gpt-4.1"] == ["gpt-4.1", "1.05M", "32K", "tools vision", "$2 / $8", "$0.5 / $2",
                               "retires 2027-01-14"]
    assert rows["o3"] == ["o3", "200K", "100K", "tools vision reasoning", "$2 / $8", "$0.5 / $2",
                          "retires 2026-12-11"]


def test_80_columns_put_capabilities_and_notes_under_the_id() -> None:
    lines = [line.rstrip() for line in table(80, "--provider", "openai")]
    at = next(i for i, line in enumerate(lines) if line.startswith("gpt-4.1 "))
    assert re.split(r"\s{2,}", lines[at]) == ["gpt-4.1", "1.05M", "32K", "$2 / $8", "$0.5 / $2"]
    assert lines[at + 1 : at + 3] == ["  tools vision", "  retires 2027-01-14"]
    google = table(80, "--provider", "google")
    flash = next(line for line in google if line.startswith("gemini-3.8-flash "))
    assert flash.split()[1:] == ["1M", "64K", "$0.75", "/", "$3.75", "$0.075", "/", "$0.75"]  # not $0.07


def test_bedrock_in_80_columns_stacks_prices_rather_than_cutting_anything() -> None:
    lines = table(80, "--provider", "bedrock")
    at = next(i for i, line in enumerate(lines) if line.startswith("us.amazon.nova-micro-v1:0 "))
    assert lines[at].split()[1:] == ["128K", "10K", "$0.035", "/", "$0.00875", "/"]
    assert lines[at + 1].split() == ["tools", "$0.14", "$0.035"]


def test_json_shape_is_unchanged() -> None:
    result = runner.invoke(app, ["models", "list", "--provider", "claude-api", "--json"])
    first = json.loads(result.stdout)[0]
    assert list(first) == ["provider", "id", "display_name", "context_window", "max_output_tokens", "tools",
                           "vision", "reasoning", "streaming", "prompt_caching", "price", "deprecation", "status",
                           "quirks", "source", "key"]


def test_fixed_catalogue_listing_does_not_open_the_workspace(isolated_env: Path) -> None:
    assert table(120, "--provider", "deepseek")
    assert runner.invoke(app, ["models", "list", "--json", "--capability", "vision", "-p", "google"]).exit_code == 0
    assert not (isolated_env / DB_NAME).exists()
    assert table(120, "--provider", "groq")  # lists its models at runtime: the workspace has its URL and key
    assert (isolated_env / DB_NAME).exists()


def test_fixed_catalogue_listing_loads_no_database_or_keychain_code() -> None:
    code = ("import sys\nfrom ironspire.cli.app import main\nsys.argv = ['ironspire', 'models', 'list', "
            "'--provider', 'deepseek']\ntry:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('sqlalchemy', 'keyring', 'httpx', 'httpx2', 'aiohttp') if m in sys.modules),"
            " file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "deepseek-v4-pro" in done.stdout and done.stderr.strip() == "[]"


def test_empty_listings_say_why() -> None:
    azure = runner.invoke(app, ["models", "list", "--provider", "azure-openai"])
    assert "azure-openai has no built-in models" in " ".join(azure.stdout.split())
    assert runner.invoke(app, ["providers", "disable", "ollama"]).exit_code == 0
    disabled = runner.invoke(app, ["models", "list", "--provider", "ollama", "--json"])
    assert json.loads(disabled.stdout) == []
    assert "ollama is disabled; enable it with `ironspire providers enable ollama`." in " ".join(
        disabled.stderr.split())
    unknown = runner.invoke(app, ["models", "list", "--provider", "custom-nowhere"])
    assert unknown.exit_code != 0 and "unknown custom endpoint 'custom-nowhere'" in str(unknown.exception)
