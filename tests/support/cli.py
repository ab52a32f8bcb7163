"""Running the Typer app in-process, as the CLI tests do."""

from __future__ import annotations

from typing import Any

from typer.testing import CliRunner

from ironspire.cli.app import app

runner = CliRunner()


def ok(*args: str, input: str | None = None) -> Any:
    """The command's result, which must have succeeded (its output and exception shown if not)."""
    result = runner.invoke(app, list(args), input=input)
    assert result.exit_code == 0, (result.output, result.exception)
    return result
