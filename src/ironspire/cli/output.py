"""Shared output helpers: JSON for machines, Rich tables for people."""

from __future__ import annotations

import json
import re
from typing import Any

from rich.console import Console
from rich.markup import escape

from ironspire.views.formatting import tokens, usd

__all__ = ["console", "emit_json", "inert", "safe", "tokens", "usd"]

console = Console(highlight=False)


def emit_json(data: Any) -> None:
    """Plain JSON on stdout (no Rich markup or wrapping) so that it pipes into other tools."""
    print(json.dumps(data, indent=2, ensure_ascii=False))


#: C0 and C1 control characters (ESC starts ANSI and OSC sequences), newline and tab excepted
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def inert(value: object) -> str:
    """Text from a user or a provider with its control characters shown as ``\\xNN``, so an
    escape sequence in a name or a reply cannot drive the terminal (colours, titles, links)."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(value))


def safe(value: object) -> str:
    """``inert`` and with Rich markup escaped: for a name or provider text inside a string that
    Rich renders as markup (``[/]`` would otherwise crash the whole listing)."""
    return escape(inert(value))
