"""Health rows: what is known of each provider now, and checks run on demand."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ironspire.views.records import HealthView

if TYPE_CHECKING:
    from ironspire.workspace import Workspace


def health(ws: Workspace, ids: Iterable[str] | None = None) -> list[HealthView]:
    """The last known state of the given (default: every) provider, without probing anything."""
    wanted = ws.provider_ids() if ids is None else [ws.provider(pid).id for pid in ids]
    return [HealthView.of(ws.health.status(pid)) for pid in wanted]


async def check(ws: Workspace, ids: Iterable[str] | None = None, *, limit: float | None = None) -> list[HealthView]:
    """Probes the given (default: the configured, enabled ones) providers now, in parallel.

    ``limit`` (seconds) bounds each check (the monitor's own default otherwise).
    """
    from ironspire.views._providers import configured_ids

    wanted = list(dict.fromkeys([ws.provider(pid).id for pid in ids] if ids is not None else configured_ids(ws)))
    monitor: Any = ws.health
    before = monitor.timeout
    if limit is not None:
        monitor.timeout = limit  # for these checks only: a long-lived server keeps its own bound
    try:
        results = await monitor.check(wanted)
    finally:
        monitor.timeout = before
    return [HealthView.of(results[pid]) for pid in wanted]
