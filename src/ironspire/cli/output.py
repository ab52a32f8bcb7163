"""Shared output helpers: JSON for machines, Rich tables for people.

Rich loads with the first thing printed through it: ``ironspire ask`` streams its reply as plain
text and never needs it.
"""

from __future__ import annotations

import json
import os
import re
from typing import TYPE_CHECKING, Any

from ironspire.views.formatting import tokens, usd

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["console", "emit_json", "inert", "safe", "tokens", "usd"]


class _Console:
    """The one Rich console of the commands (``Console(highlight=False)``), made at first use."""

    def __init__(self) -> None:
        self._console: Console | None = None
        self._size: tuple[str | None, str | None] = (None, None)

    @property
    def rich(self) -> Console:
        # Rich fixes the width at construction when COLUMNS is set; a console made at the first
        # print would keep that width for every later command of the process (a test runner's
        # invocations), so it is made again when COLUMNS or LINES changed
        size = (os.environ.get("COLUMNS"), os.environ.get("LINES"))
        if self._console is None or size != self._size:
            from rich.console import Console

            self._console, self._size = Console(highlight=False), size
        return self._console

    def print(self, *objects: Any, **kwargs: Any) -> None:
        self.rich.print(*objects, **kwargs)

    @property
    def width(self) -> int:
        return self.rich.width


console = _Console()


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
    from rich.markup import escape

    return escape(inert(value))
