"""Shared output helpers: JSON for machines, Rich tables for people."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console

from ironspire.views.formatting import tokens, usd

__all__ = ["console", "emit_json", "tokens", "usd"]

console = Console(highlight=False)


def emit_json(data: Any) -> None:
    """Plain JSON on stdout (no Rich markup or wrapping) so that it pipes into other tools."""
    print(json.dumps(data, indent=2, ensure_ascii=False))
