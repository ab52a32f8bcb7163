"""What a request costs: the user's price for a model over the catalogue's, and which one was used.

A user sets a price per model (a negotiated Azure or Bedrock rate, a custom endpoint's tariff) in
the ``price_overrides`` setting, keyed ``provider/model``; it wins over the catalogue from the next
turn on, in every process (a setting write bumps the configuration revision). A model whose price
is neither set nor in the catalogue has an unknown price, and so an unknown cost: the ledger
stores NULL, never $0. Each ledger row keeps the price it was costed at (``price_json``), so a
later change of price does not rewrite what past requests cost.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any, Literal

from ironspire.catalog.models import ModelSpec, Price
from ironspire.errors import ConfigurationError
from ironspire.messages import Usage

SETTING = "price_overrides"
PRICE_FIELDS = ("input", "output", "cache_read", "cache_write")
PriceSource = Literal["override", "catalog"]


def key(provider: str, model: str) -> str:
    return f"{provider}/{model}"


def parse(values: Mapping[str, Any]) -> Price:
    """A Price from USD-per-million-token figures; anything else is refused, naming the field."""
    unknown = set(values) - set(PRICE_FIELDS)
    if unknown:
        raise ConfigurationError(f"unknown price field(s) {', '.join(sorted(unknown))}.",
                                 hint="Use " + ", ".join(PRICE_FIELDS) + " (USD per million tokens).")
    out: dict[str, float] = {}
    for name in PRICE_FIELDS:
        raw = values.get(name, 0.0)
        try:
            number = float(raw)
        except (TypeError, ValueError):
            raise ConfigurationError(f"the {name} price must be a number of USD per million tokens, not {raw!r}.") \
                from None
        if not math.isfinite(number) or number < 0:
            raise ConfigurationError(f"the {name} price must be zero or more USD per million tokens, not {raw!r}.")
        out[name] = number
    return Price(**out)


def resolve(overrides: Mapping[str, Any] | None, model: ModelSpec) -> tuple[Price, PriceSource] | None:
    """The price a request of ``model`` is costed at, and where it came from; None when unknown."""
    own = (overrides or {}).get(key(model.provider, model.id))
    if own is not None:
        return Price(**{f: float(own.get(f, 0.0)) for f in PRICE_FIELDS}), "override"
    if model.price != _NO_PRICE:
        return model.price, "catalog"
    return None


_NO_PRICE = Price()


def price_json(price: tuple[Price, PriceSource] | None) -> str | None:
    if price is None:
        return None
    return _price_json(*price)


@functools.lru_cache(maxsize=1024)
def _price_json(price: Price, source: PriceSource) -> str:
    """Every ledger row stores its price this way, and a workspace has a few dozen prices: each
    is encoded once (``asdict`` and ``json.dumps`` cost a turn ~15 µs)."""
    return json.dumps({**asdict(price), "source": source}, separators=(",", ":"))


def cost(price: tuple[Price, PriceSource] | None, usage: Usage) -> float | None:
    """What ``usage`` costs at ``price``; None (unknown) without a price or without counts."""
    if price is None or usage.state == "unknown":
        return None
    return price[0].cost(usage)
