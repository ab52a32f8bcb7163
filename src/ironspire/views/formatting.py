"""Numbers as people read them, for every front end: context sizes, costs, list prices."""

from __future__ import annotations

import math


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
    """Costs in cents from a cent up; below it four significant digits in plain decimals (a local
    model's turn costs $0.00002778, never "2.778e-05", which people misread), and a floor under
    which a cost reads as less than a millionth of a dollar."""
    if x == 0:
        return "0"
    if abs(x) >= 0.01:
        return f"${x:.2f}".rstrip("0").rstrip(".")
    if abs(x) < 1e-6:
        return "<$0.000001" if x > 0 else "-<$0.000001"
    places = 3 - math.floor(math.log10(abs(x)))
    return f"${x:.{places}f}".rstrip("0").rstrip(".")


def money(x: float | None) -> str:
    """A cost shown on its own (a KPI card, the Session HUD): "$0" rather than a bare "0", and
    "unknown" where no price says what it cost."""
    if x is None:
        return "unknown"
    return "$0" if x == 0 else usd(x)


def price_pair(a: float, b: float, sep: str = " ") -> str:
    if a == 0 and b == 0:
        return "-"  # not reported (most listings carry no prices) or not billed per token (a local server)
    return f"{list_price(a)} /{sep}{list_price(b)}"


def list_price(x: float) -> str:
    """A list price as published: $0.075 stays $0.075 (not rounded to cents), $10 stays $10."""
    return f"${x:.6g}"
