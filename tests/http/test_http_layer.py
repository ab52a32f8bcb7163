"""The HTTP seam under the transport: line splitting, SSE rules, and each client against a real
socket on 127.0.0.1, including the faults that poisoned httpcore's pool (httpcore#550): requests
that time out, are cancelled mid-flight or meet a broken server must leave the pool usable."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from ironspire.http import (
    Client,
    ConnectFailed,
    ConnectionLost,
    Limits,
    LineDecoder,
    Request,
    TimedOut,
    Timeouts,
    client_factory,
)
from ironspire.http.sse import Event, events
from support.http_stub import Reply, StubServer, refused_port

CLIENTS = ("aiohttp", "httpx2")


def _lines(chunks: list[bytes]) -> list[str]:
    decoder = LineDecoder()
    out = [line for chunk in chunks for line in decoder.feed(chunk)]
    return out + decoder.flush()


def test_lines_end_at_crlf_lf_or_cr_even_split_across_reads() -> None:
    assert _lines([b"a\r", b"\nb\n", b"\rc\r", b"d", b"\r\n\r\n"]) == ["a", "b", "", "c", "d", ""]
    assert _lines([b"data: x", b"y\n", b"tail"]) == ["data: xy", "tail"]
    assert _lines([b"\xc3", b"\xa9\n"]) == ["é"]  # a character split between reads stays whole


async def _aiter(items: list[str]) -> AsyncIterator[str]:
    for item in items:
        yield item


async def _events(lines: list[str]) -> list[Event]:
    return [e async for e in events(_aiter(lines))]


async def test_sse_follows_the_event_stream_rules() -> None:
    got = await _events([
        ": a comment", "event: delta", "data: {\"a\":", "data:1}", "id: 7", "unknown: field", "",
        "data:  two spaces keep one", "", "retry: 10", "", "data: pending at the end",
    ])
    assert got == [Event("delta", '{"a":\n1}', "7"), Event("message", " two spaces keep one", "7")]


SMALL = Limits(4, 4)


@pytest.fixture(params=CLIENTS)
def make(request: pytest.FixtureRequest) -> object:
    def build(limits: Limits = SMALL, read: float = 5.0) -> Client:
        return client_factory(request.param)("p", limits, Timeouts(read=read, connect=2.0))
    return build


def _get(url: str) -> Request:
    return Request("GET", url, {"accept": "application/json"})


async def test_status_headers_and_body_come_back_as_sent(make) -> None:
    routes = {"/x": Reply(429, {"error": "slow"}, headers={"Retry-After": "2"}),
              "/s": Reply(200, b"data: 1\r\n\r\ndata: 2\n\n", headers={"content-type": "text/event-stream"})}
    async with StubServer(routes) as server:
        client = make()
        try:
            r = await client.send(_get(server.url + "/x"), stream=False)
            assert (r.status_code, r.headers["retry-after"], r.content) == (429, "2", b'{"error": "slow"}')
            r = await client.send(_get(server.url + "/s"), stream=True)
            try:
                assert [e.data async for e in events(r.aiter_lines())] == ["1", "2"]
            finally:
                await r.aclose()
        finally:
            await client.aclose()


async def test_failures_are_typed_by_what_happened(make) -> None:
    routes = {"/hang": Reply(hang=True), "/garbage": Reply(raw=b"NOT HTTP AT ALL\r\n\r\n"),
              "/cut": Reply(raw=b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly part")}
    async with StubServer(routes) as server:
        client = make(read=0.3)
        try:
            with pytest.raises(ConnectFailed):
                await client.send(_get(f"http://127.0.0.1:{refused_port()}/"), stream=False)
            with pytest.raises(TimedOut) as timed:
                await client.send(_get(server.url + "/hang"), stream=False)
            assert timed.value.phase == "read"
            with pytest.raises(ConnectionLost):
                await client.send(_get(server.url + "/garbage"), stream=False)
            with pytest.raises(ConnectionLost):
                await client.send(_get(server.url + "/cut"), stream=False)
        finally:
            await client.aclose()


async def test_timeouts_cancellations_and_broken_answers_leave_the_pool_usable(make) -> None:
    """With only two connections in the pool, every kind of failed request must give its
    connection back, or the good requests after them would wait for a slot forever."""
    routes = {"/ok": Reply(200, {"ok": True}), "/hang": Reply(hang=True),
              "/garbage": Reply(raw=b"\x00\x01 nonsense\r\n\r\n"),
              "/cut": Reply(raw=b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nab")}
    async with StubServer(routes) as server:
        client = make(Limits(2, 2), read=0.2)
        try:
            failed = await asyncio.gather(*(client.send(_get(server.url + p), stream=False)
                                            for p in ["/hang", "/garbage", "/cut"] * 3), return_exceptions=True)
            assert all(isinstance(f, (TimedOut, ConnectionLost)) for f in failed), failed
            slow = Limits(2, 2)
            patient = make(slow, read=30.0)
            try:
                tasks = [asyncio.create_task(patient.send(_get(server.url + "/hang"), stream=False)) for _ in range(4)]
                await asyncio.sleep(0.2)
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                # a stream abandoned half-read must not hold its connection either
                r = await patient.send(_get(server.url + "/ok"), stream=True)
                await r.aclose()
                ok = await asyncio.wait_for(asyncio.gather(
                    *(patient.send(_get(server.url + "/ok"), stream=False) for _ in range(8))), 20)
                assert [r.status_code for r in ok] == [200] * 8
            finally:
                await patient.aclose()
            ok = await asyncio.wait_for(asyncio.gather(
                *(client.send(_get(server.url + "/ok"), stream=False) for _ in range(8))), 20)
            assert [r.content for r in ok] == [b'{"ok": true}'] * 8
        finally:
            await client.aclose()


def test_an_unknown_client_name_is_a_configuration_error() -> None:
    from ironspire.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="IRONSPIRE_HTTP_CLIENT"):
        client_factory("curl")
