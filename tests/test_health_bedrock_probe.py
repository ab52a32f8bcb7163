"""A health check of Bedrock signed with a profile / SSO chain must not freeze the process.

The chain is botocore's real one, reading a profile whose ``credential_process`` sleeps the way
an SSO refresh waits on the network. While the probe waits for it, other agents' turns (here a
10 ms ticker) must keep running, and the probe must then sign with the chain's credentials.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

from ironspire.catalog.models import ModelSpec
from ironspire.catalog.providers import builtin
from ironspire.health.probes import probe_http
from ironspire.health.status import HealthState
from ironspire.protocols.base import Secrets, Target
from ironspire.transport import Transport
from support.replay import Received, credential_process, json_answer, loopback, ticking

SLOW = 0.6


@pytest.fixture
def sso_like_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with credential_process(tmp_path, monkeypatch, delay=SLOW,
                            credentials=("AKIAPROBEEXAMPLE", "probe-secret", "probe-token"), profiles={"sso-like": 60}):
        yield


def control_plane() -> AbstractAsyncContextManager[tuple[str, list[Received]]]:
    """Answers the model listing the probe asks for; records each request line and headers."""
    return loopback(lambda _: json_answer({"modelSummaries": []}))


async def test_bedrock_probe_resolves_the_chain_off_the_event_loop(sso_like_profile: None) -> None:
    model = ModelSpec("bedrock", "amazon.nova-micro-v1:0", "Nova Micro", 128_000, 10_000)
    async with control_plane() as (url, seen):
        target = Target(builtin("bedrock"), model, url, Secrets({}),
                        {"region": "us-east-1", "credential_chain": "true", "profile": "sso-like"})
        transport = Transport()
        try:
            status, ticks, elapsed = await ticking(probe_http(target, transport, 10.0))
        finally:
            await transport.close()
    assert status.state is HealthState.REACHABLE, status.detail
    assert elapsed >= SLOW
    # a loop blocked inside the credential process would have ticked about once; a free one ticks
    # ~60 times in 0.6 s, fewer on a loaded machine, so the bar sits well clear of both
    assert ticks >= 10, (ticks, elapsed)
    [(line, headers, _)] = seen
    assert line.startswith("GET /foundation-models?byOutputModality=TEXT ")
    assert headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIAPROBEEXAMPLE/")
    assert headers["x-amz-security-token"] == "probe-token"
