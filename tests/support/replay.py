"""Serving recorded (or scripted) traffic to the real Transport and adapters, shared by the
protocol tests.

``ReplayTransport`` keeps everything of the production Transport (retry loop, status handling,
streaming) and only swaps the network for an ``httpx2.MockTransport``, so a replay exercises the
same path a user's request takes. Where a test must see what really crosses a socket (SigV4
signatures, the Host header, the credential chain off the event loop), ``loopback`` is a real
HTTP/1.1 server on 127.0.0.1 instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import httpx2
import pytest

from ironspire.http import through
from ironspire.messages import Accumulator, Message, StreamEvent
from ironspire.protocols import bedrock_converse
from ironspire.protocols.base import Backend, ChatRequest, Target
from ironspire.transport import RetryPolicy, Transport
from support.recordings import Interaction

T = TypeVar("T")
Handler = Callable[[httpx2.Request], httpx2.Response]

# Recorded bodies are stored decoded, so these no longer describe them and must not be replayed.
_FRAMING = frozenset({"content-encoding", "content-length", "transfer-encoding"})


class ReplayTransport(Transport):
    """The real Transport with every provider's pool answered by ``handler``.

    Replays do not wait between attempts by default; a test about the wait itself passes its
    own ``retry`` policy.
    """

    def __init__(self, handler: Handler, attempts: int = 1, *, retry: RetryPolicy | None = None) -> None:
        super().__init__(retry or RetryPolicy(attempts=attempts, base_delay=0.0, max_delay=0.0),
                         http=through(httpx2.MockTransport(handler)))
        self.handler = handler

    async def __aenter__(self) -> ReplayTransport:
        return self


async def chunks(body: bytes, size: int) -> AsyncIterator[bytes]:
    """``body`` in reads of ``size`` bytes, so decoders meet frames and lines split mid-way."""
    for i in range(0, len(body), size):
        yield body[i:i + size]


class Server:
    """Answers each request with the next recorded interaction and keeps every request it got.

    What a recording holds besides the exchange under test differs by source, so it is chosen per
    caller: ``only`` picks the interactions to serve (image recordings also hold the GET that
    fetched the picture); ``keep`` names the only response headers passed on (``None``: all but
    the framing headers); ``content_type`` is used where the recording names none; ``chunk`` splits
    each body into reads of that many bytes.
    """

    def __init__(self, interactions: Iterable[Interaction], chunk: int | None = None, *,
                 only: Callable[[Interaction], bool] | None = None, keep: Collection[str] | None = None,
                 content_type: str | None = None) -> None:
        self.queue = [i for i in interactions if only is None or only(i)]
        self.sent: list[httpx2.Request] = []
        self.chunk = chunk
        self.keep = keep
        self.content_type = content_type

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.sent.append(request)
        rec = self.queue.pop(0)
        content: Any = chunks(rec.body, self.chunk) if self.chunk else rec.body
        return httpx2.Response(rec.status, headers=self.headers(rec), content=content)

    def headers(self, rec: Interaction) -> dict[str, str]:
        if self.keep is None:
            out = {k: v for k, v in rec.headers.items() if k.lower() not in _FRAMING}
        else:
            out = {k: v for k, v in rec.headers.items() if k in self.keep}
        if self.content_type is not None:
            out.setdefault("content-type", self.content_type)
        return out

    def body(self, n: int) -> Any:
        """The JSON body of the ``n``-th request sent."""
        return json.loads(self.sent[n].content)

    def bodies(self) -> list[Any]:
        return [json.loads(r.content) for r in self.sent]


async def collect(protocol: Backend, request: ChatRequest, target: Target) -> tuple[list[StreamEvent], Message]:
    """The streamed events and the message a caller would build from them."""
    events = [e async for e in protocol.stream(request, target)]
    return events, Accumulator(target.provider.id, target.model.id).feed(events).message()


# --- a real socket ---------------------------------------------------------------------------------

Answer = tuple[int, dict[str, str], bytes]


class Received(NamedTuple):
    line: str  # the request line as sent, e.g. "POST /model/x%3A0/converse HTTP/1.1"
    headers: dict[str, str]  # names lower-cased
    body: bytes


def json_answer(payload: Any, status: int = 200) -> Answer:
    return status, {"content-type": "application/json"}, json.dumps(payload).encode()


@contextlib.asynccontextmanager
async def loopback(answers: list[Answer] | Callable[[Received], Answer]) -> AsyncIterator[tuple[str, list[Received]]]:
    """An HTTP/1.1 server on 127.0.0.1 that answers each request (from ``answers`` in order, or
    by calling it) on a connection it then closes; yields its URL and what it received."""
    seen: list[Received] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in head[1:] if ln)}
        received = Received(head[0], headers, await reader.readexactly(int(headers.get("content-length", "0"))))
        seen.append(received)
        status, out_headers, payload = answers.pop(0) if isinstance(answers, list) else answers(received)
        lines = [f"HTTP/1.1 {status} {http.client.responses.get(status, 'Unknown')}",
                 f"content-length: {len(payload)}", "connection: close"]
        lines += [f"{k}: {v}" for k, v in out_headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", seen
    finally:
        server.close()
        await server.wait_closed()


async def ticking(during: Awaitable[T]) -> tuple[T, int, float]:
    """Runs ``during`` while a 10 ms ticker counts how often the loop got to run it; a loop
    blocked for the whole wait ticks about once."""
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    started = time.perf_counter()
    try:
        result = await during
    finally:
        elapsed = time.perf_counter() - started
        stop.set()
        await task
    return result, ticks, elapsed


# --- AWS credentials from files, as botocore's chain reads them ----------------------------------


def use_aws_files(monkeypatch: pytest.MonkeyPatch, config: Path, credentials: Path) -> None:
    """botocore reads these two files and never asks an instance-metadata endpoint."""
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@contextlib.contextmanager
def fresh_chain_credentials() -> Iterator[None]:
    """No chain credentials cached by an earlier test are used, and none are left for a later one."""
    bedrock_converse.forget_chain_credentials()
    try:
        yield
    finally:
        bedrock_converse.forget_chain_credentials()


@contextlib.contextmanager
def credential_process(directory: Path, monkeypatch: pytest.MonkeyPatch, *, delay: float,
                       credentials: tuple[str, str, str], profiles: Mapping[str, float]) -> Iterator[Path]:
    """A profile per entry of ``profiles`` (name: minutes its credentials last) whose
    ``credential_process`` sleeps ``delay`` seconds, the way an SSO refresh waits on the network,
    then prints ``credentials`` (key id, secret, session token). Yields a log with a line per run."""
    runs = directory / "runs.log"
    script = directory / "creds.py"
    key_id, secret, token = credentials
    script.write_text(
        "import datetime, json, sys, time\n"
        f"time.sleep({delay})\n"
        f"open({str(runs)!r}, 'a').write('run\\n')\n"
        "minutes = float(sys.argv[1])\n"
        "exp = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=minutes)\n"
        f"print(json.dumps({{'Version': 1, 'AccessKeyId': {key_id!r}, 'SecretAccessKey': {secret!r},\n"
        f"                  'SessionToken': {token!r}, 'Expiration': exp.strftime('%Y-%m-%dT%H:%M:%SZ')}}))\n"
    )
    config = directory / "config"
    config.write_text("\n".join(f"[profile {name}]\ncredential_process = {sys.executable} {script} {minutes}\n"
                                for name, minutes in profiles.items()))
    use_aws_files(monkeypatch, config, directory / "credentials")
    with fresh_chain_credentials():
        yield runs
