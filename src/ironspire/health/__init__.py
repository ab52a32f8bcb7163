"""Provider health: states, probes per protocol, and the monitor that keeps them current."""

from ironspire.health.monitor import HealthMonitor
from ironspire.health.probes import find_claude_cli
from ironspire.health.status import HealthState, HealthStatus

__all__ = ["HealthMonitor", "HealthState", "HealthStatus", "find_claude_cli"]
