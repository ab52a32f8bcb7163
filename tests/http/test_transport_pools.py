"""One provider's failures never reach another's pool (httpcore#550-style poisoning), on real
sockets: while provider A's server hangs, resets and sends garbage, and A's requests time out or
are cancelled, provider B's requests through the same Transport all succeed; and A's own pool
works again once its server answers. Pool sizes are explicit: keep-alive covers the connections."""

from __future__ import annotations

import asyncio

import pytest

from ironspire.catalog.models import dynamic_model
from ironspire.catalog.providers import CustomEndpoint
from ironspire.errors import ProviderUnavailable
from ironspire.transport import RetryPolicy, Transport
from ironspire.wire import Target, WireRequest
from support.http_stub import Reply, Seen, StubServer


def _target(name: str, url: str, timeout: float) -> Target:
    spec = CustomEndpoint(name, url + "/v1", "m").spec()
    return Target(spec, dynamic_model(spec.id, "m"), spec.base_url, timeout=timeout, connect_timeout=2.0)


def _get(url: str, path: str) -> WireRequest:
    return WireRequest("GET", url + path, {"accept": "application/json"})


def test_keep_alive_covers_every_connection_the_pool_may_open() -> None:
    limits = Transport(max_connections=64).limits
    assert limits.max_keepalive == limits.max_connections == 64


async def test_a_failing_provider_does_not_poison_the_others() -> None:
    healthy = {"broken": True}

    def faulty(seen: Seen) -> Reply:
        if not healthy["broken"]:
            return Reply(200, {"ok": "a"})
        return {"/hang": Reply(hang=True), "/garbage": Reply(raw=b"\x16\x03 not http\r\n\r\n"),
                "/reset": Reply(raw=b"")}.get(seen.path, Reply(500, {"error": {"message": "boom"}}))

    async with (StubServer(resolver=faulty) as bad, StubServer({"/ok": Reply(200, {"ok": "b"})}) as good,
                Transport(RetryPolicy(attempts=1), max_connections=4) as transport):
        a, b = _target("a", bad.url, timeout=0.3), _target("b", good.url, timeout=10.0)
        patient_a = _target("a", bad.url, timeout=30.0)
        hung = [asyncio.create_task(transport.request(_get(bad.url, "/hang"), patient_a)) for _ in range(4)]
        failing = [transport.request(_get(bad.url, p), a) for p in ("/hang", "/garbage", "/reset", "/500") * 4]
        succeeding = [transport.request(_get(good.url, "/ok"), b) for _ in range(32)]
        results = await asyncio.gather(*failing, *succeeding, return_exceptions=True)
        assert all(isinstance(r, ProviderUnavailable) for r in results[:16]), results[:16]
        assert results[16:] == [b'{"ok": "b"}'] * 32
        for task in hung:  # cancelled mid-request: their connections must be given back
            task.cancel()
        await asyncio.gather(*hung, return_exceptions=True)
        assert all(t.cancelled() for t in hung)

        healthy["broken"] = False
        again = await asyncio.wait_for(asyncio.gather(
            *(transport.request(_get(bad.url, "/any"), a) for _ in range(12))), 20)
        assert again == [b'{"ok": "a"}'] * 12


@pytest.mark.parametrize("client", ["aiohttp", "httpx2"])
async def test_either_client_behind_the_seam_serves_the_transport(client: str,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IRONSPIRE_HTTP_CLIENT", client)
    async with (StubServer({"/v1/x": Reply(404, {"error": {"message": "no model"}})}) as server,
                Transport(RetryPolicy(attempts=1)) as transport):
        response = await transport.fetch(_get(server.url, "/v1/x"), _target("c", server.url, 5.0))
        assert (response.status_code, response.json()) == (404, {"error": {"message": "no model"}})
