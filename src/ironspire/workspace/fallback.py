"""Fallback routes: which provider+model a turn tries after its own route, and when.

An agent has an ordered chain of fallback routes, its own or (when it sets none) the workspace's
default chain. A turn walks ``[own route, *chain]``:

- a route whose provider is disabled, rate-limited (until the limit's reset) or was found
  unreachable within the cooldown is skipped without a request; so is one that fails pre-flight
  (context window, tools, vision) or lacks credentials. The reason is recorded as an ``Attempt``;
- a request that fails before any output reached the caller, with a failure of a kind listed in
  the ``fallback_on`` setting (``FAILURE_KINDS``; by default all but ``invalid_key``, since a
  refused key is a configuration problem that another provider hides instead of fixing), moves
  on to the next route; any other failure, or one after output started, fails the turn as
  without fallbacks (the history stays as it was);
- the agent's own route never changes, so the next turn starts from it again.

This module holds the pure decisions (what a failure is, whether a provider's health rules it
out, parsing ``P/M`` lists); the turn itself is ``workspace.agent``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeAlias

from ironspire.errors import (
    AuthenticationError,
    BadRequest,
    ConfigurationError,
    ProviderUnavailable,
    RateLimitError,
)

FailureKind: TypeAlias = Literal["unreachable", "5xx", "rate_limited", "quota", "invalid_key"]
FAILURE_KINDS: tuple[FailureKind, ...] = ("unreachable", "5xx", "rate_limited", "quota", "invalid_key")
DEFAULT_TRIGGERS: tuple[FailureKind, ...] = ("unreachable", "5xx", "rate_limited", "quota")
#: seconds a provider found unreachable is skipped by turns that have somewhere else to go
DEFAULT_COOLDOWN = 30.0

#: billing-quota markers in a 429's body: per-minute limits lift by themselves, these do not
_QUOTA_MARKERS = ("insufficient_quota", "billing_hard_limit", "quota_exceeded")


@dataclass(frozen=True, slots=True)
class FallbackRoute:
    provider: str
    model: str

    def __str__(self) -> str:
        return f"{self.provider}/{self.model}"


@dataclass(frozen=True, slots=True)
class Attempt:
    """One route a turn considered: ``outcome`` is "ok", "skipped" (no request was made;
    ``reason`` says why) or the error's class name (a request was made and failed)."""

    provider: str
    model: str
    outcome: str
    reason: str = ""
    latency_s: float = 0.0
    cost_usd: float | None = None

    @property
    def sent(self) -> bool:
        return self.outcome != "skipped"

    def to_json(self) -> dict[str, Any]:
        return {"provider": self.provider, "model": self.model, "outcome": self.outcome, "reason": self.reason,
                "latency_s": round(self.latency_s, 4), "cost_usd": self.cost_usd}


def parse_routes(text: str | Iterable[str]) -> tuple[FallbackRoute, ...]:
    """``"openai/gpt-4.1,claude-api/claude-sonnet-5-5"`` (or its items) as routes, in order.
    The model is everything after the first ``/`` (model ids may hold slashes)."""
    items = text.split(",") if isinstance(text, str) else list(text)
    routes: list[FallbackRoute] = []
    for raw in items:
        item = raw.strip()
        if not item:
            continue
        provider, sep, model = item.partition("/")
        if not sep or not provider.strip() or not model.strip():
            raise ConfigurationError(
                f"fallback route {item!r} is not PROVIDER/MODEL.",
                hint="Give routes as P/M,P/M, e.g. `--fallback claude-api/claude-sonnet-5-5,google/gemini-3.8-flash`.",
            )
        routes.append(FallbackRoute(provider.strip(), model.strip()))
    return tuple(routes)


def from_stored(value: Any) -> tuple[FallbackRoute, ...] | None:
    """A chain as kept in the settings (a list of ``[provider, model]``), None when unset."""
    if value is None:
        return None
    return tuple(FallbackRoute(str(p), str(m)) for p, m in value)


def to_stored(routes: Sequence[FallbackRoute] | None) -> list[list[str]] | None:
    return None if routes is None else [[r.provider, r.model] for r in routes]


def check_triggers(values: Iterable[str]) -> list[str]:
    chosen = list(dict.fromkeys(values))
    unknown = [v for v in chosen if v not in FAILURE_KINDS]
    if unknown:
        raise ConfigurationError(f"unknown fallback trigger(s) {', '.join(unknown)}.",
                                 hint="Choose from: " + ", ".join(FAILURE_KINDS) + ".")
    return chosen


def failure_kind(error: BaseException) -> FailureKind | None:
    """Which kind of failure ``error`` is, for the ``fallback_on`` setting; None for failures no
    other route would fix (a rejected request, an unknown model, a cancelled turn)."""
    if isinstance(error, RateLimitError):
        raw = (error.raw or "").lower()
        return "quota" if any(m in raw for m in _QUOTA_MARKERS) else "rate_limited"
    if isinstance(error, AuthenticationError):
        return "invalid_key"
    if isinstance(error, ProviderUnavailable):
        return "unreachable" if error.status is None else "5xx"
    if isinstance(error, BadRequest) and error.status == 402:  # payment required: the account is out of credit
        return "quota"
    return None


def health_skip(status: Any, cooldown: float, now: float | None = None) -> str | None:
    """Why a provider's known health rules it out without a request, or None.

    Rate-limited counts until its reset time (the monitor turns it back to reachable then);
    unreachable counts for ``cooldown`` seconds after it was observed; disabled always.
    """
    state = str(getattr(status, "state", "unknown"))
    detail = str(getattr(status, "detail", "") or "")
    if state == "disabled":
        return "disabled"
    if state == "rate_limited":
        until: datetime | None = getattr(status, "until", None)
        if until is None:
            return "rate-limited" + (f": {detail}" if detail else "")
        left = until.timestamp() - (time.time() if now is None else now)
        if left > 0:
            return f"rate-limited for {left:.0f} s more" + (f": {detail}" if detail else "")
        return None
    if state == "unreachable":
        checked: datetime | None = getattr(status, "checked_at", None)
        age = None if checked is None else (time.time() if now is None else now) - checked.timestamp()
        if age is None or age < cooldown:
            return "unreachable (cooling down)" + (f": {detail}" if detail else "")
    return None
