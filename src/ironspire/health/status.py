"""What is known about one provider's health, and when it was learned."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


class HealthState(enum.StrEnum):
    REACHABLE = "reachable"
    UNREACHABLE = "unreachable"
    RATE_LIMITED = "rate_limited"
    INVALID_KEY = "invalid_key"
    NOT_CONFIGURED = "not_configured"
    DISABLED = "disabled"
    UNKNOWN = "unknown"


def now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class HealthStatus:
    """One observation. ``detail`` is the provider's own words, already passed through ``redact``."""

    provider: str
    state: HealthState
    checked_at: datetime = field(default_factory=now)
    latency_ms: float | None = None
    detail: str = ""
    until: datetime | None = None
    """When a rate limit lifts (the state reverts to reachable then)."""

    @property
    def healthy(self) -> bool:
        return self.state is HealthState.REACHABLE

    def to_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "state": self.state.value,
            "healthy": self.healthy,
            "checked_at": self.checked_at.isoformat(),
            "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 1),
            "detail": self.detail,
            "until": None if self.until is None else self.until.isoformat(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HealthStatus:
        """The inverse of ``to_dict`` (for the states kept between commands)."""
        until = data.get("until")
        return cls(
            str(data["provider"]), HealthState(data["state"]), datetime.fromisoformat(data["checked_at"]),
            data.get("latency_ms"), str(data.get("detail") or ""), datetime.fromisoformat(until) if until else None,
        )
