"""Shared output helpers: JSON for machines, Rich tables for people."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console

console = Console(highlight=False)


def emit_json(data: Any) -> None:
    """Plain JSON on stdout (no Rich markup or wrapping) so that it pipes into other tools."""
    print(json.dumps(data, indent=2, ensure_ascii=False))


def tokens(n: int) -> str:
    """Context sizes as people quote them: 200K, 1M, 1.05M, 3.5M.

    Windows that are whole multiples of 1024 (and not round decimal numbers such as 128,000)
    are quoted in binary units by their vendors
    (Mistral's 262,144 is "256K", Gemini's 1,048,576 is "1M"), so they are shown that way.
    """
    if n >= 1024 and n % 1024 == 0 and n % 1000 != 0:
        if n % (1024 * 1024) == 0:
            return f"{n // (1024 * 1024)}M"
        if n < 1024 * 1024:
            return f"{n // 1024}K"
    if n >= 1_000_000:
        value = f"{n / 1_000_000:.2f}".rstrip("0").rstrip(".")
        return f"{value}M"
    if n >= 1_000:
        value = f"{n / 1_000:.1f}".rstrip("0").rstrip(".")
        return f"{value}K"
    return str(n)


def usd(x: float) -> str:
    if x == 0:
        return "0"
    return f"${x:.4g}" if x < 0.01 else f"${x:.2f}".rstrip("0").rstrip(".")
