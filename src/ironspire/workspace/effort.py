"""The per-agent effort level: how deeply an agent reasons before it answers.

One product-level choice (Low / Medium / High, High by default, as the agent configuration
documents it) rather than each provider's own knob: the protocols already map the neutral
``ChatRequest.reasoning`` level onto theirs, so the level is all an agent stores.
"""

from __future__ import annotations

from typing import Literal, TypeAlias

from ironspire.errors import ConfigurationError

Effort: TypeAlias = Literal["low", "medium", "high"]
EFFORTS: tuple[Effort, ...] = ("low", "medium", "high")
DEFAULT_EFFORT: Effort = "high"
EFFORT_LABELS: dict[Effort, str] = {
    "low": "Low: fast, minimal thinking",
    "medium": "Medium: balanced reasoning and speed",
    "high": "High: deep reasoning (default)",
}


def check_effort(value: str | None) -> Effort:
    """The level named (any case), or a ConfigurationError listing the choices."""
    level = (value or "").strip().lower()
    if level not in EFFORTS:
        raise ConfigurationError(
            f"unknown effort level {value!r}.", hint="Choose one of low, medium, high (the default is high)."
        )
    return level
