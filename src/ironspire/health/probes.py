"""Running a provider's health probe and recording what it says.

What to ask, and what an answer means, is each protocol's fact (``Backend.probe``: the cheapest
authenticated call, one attempt through the provider's pool, never the retry loop). This module
only adds what health needs on top: the time, the latency and the redacted detail.
"""

from __future__ import annotations

import time
from datetime import timedelta

from ironspire.errors import redact
from ironspire.health.status import HealthState, HealthStatus, now
from ironspire.protocols.claude_cli_probe import find_claude_cli as find_claude_cli
from ironspire.transport import Transport
from ironspire.wire import ProbeOutcome, Target

DEFAULT_RATE_LIMIT = 60.0
"""Seconds a provider stays rate-limited when its 429 names no reset time."""


def status_from(target: Target, outcome: ProbeOutcome, started: float) -> HealthStatus:
    checked = now()
    state = HealthState(outcome.state)
    until = None
    if state is HealthState.RATE_LIMITED:
        until = checked + timedelta(seconds=outcome.retry_after if outcome.retry_after is not None
                                    else DEFAULT_RATE_LIMIT)
    return HealthStatus(
        target.provider.id, state, checked, (time.perf_counter() - started) * 1000,
        redact(outcome.detail, target.secrets.values()), until,
    )


async def probe_for(target: Target, transport: Transport, limit: float) -> HealthStatus:
    """The provider's own probe, within ``limit`` seconds."""
    from ironspire.protocols import backend_for

    started = time.perf_counter()
    outcome = await backend_for(target.provider.protocol, transport).probe(target, limit)
    return status_from(target, outcome, started)


probe_http = probe_for
"""Kept for callers that named the HTTP case: every protocol's probe now runs the same way."""


def bedrock_control_url(target: Target) -> str:
    """Bedrock's control-plane listing URL (the adapter's rule; imported only when asked)."""
    from ironspire.protocols.bedrock_converse import bedrock_control_url as control_url

    return control_url(target)
