"""A real `ironspire serve` process on 127.0.0.1, for tests that need the server as users run it
(the browser tests, the start-up checks): its own IRONSPIRE_HOME, the encrypted-file credential
store (no keychain on CI), and the URL it prints, token included."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

PASSPHRASE = "browser tests passphrase"
STARTUP_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update(IRONSPIRE_HOME=str(home), IRONSPIRE_KEYRING="encrypted-file", IRONSPIRE_KEYRING_PASSPHRASE=PASSPHRASE,
               PYTHONUNBUFFERED="1")
    return env


@dataclass
class Serving:
    url: str
    """The printed URL, with this launch's token."""
    port: int
    home: Path
    process: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token(self) -> str:
        return self.url.rsplit("token=", 1)[1]

    def client(self) -> httpx.Client:
        """A script's client: the token as a bearer header."""
        return httpx.Client(base_url=self.base, headers={"authorization": f"Bearer {self.token}"}, trust_env=False,
                            timeout=30.0)


def _pump(stream: object, sink: list[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        sink.append(line)


@contextmanager
def serving(home: Path, *, host: str = "127.0.0.1", port: int | None = None) -> Iterator[Serving]:
    home.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    command = [sys.executable, "-m", "ironspire.cli", "serve", "--host", host, "--port", str(port)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=serve_env(home))
    out: list[str] = []
    err: list[str] = []
    threading.Thread(target=_pump, args=(proc.stdout, out), daemon=True).start()
    threading.Thread(target=_pump, args=(proc.stderr, err), daemon=True).start()
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        url = None
        while url is None:
            found = next((m for line in out if (m := re.search(r"running at (\S+)", line))), None)
            if found:
                url = found.group(1)
                break
            if proc.poll() is not None:
                raise RuntimeError(f"ironspire serve exited ({proc.returncode}):\n{''.join(out)}{''.join(err)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"ironspire serve printed no URL within {STARTUP_TIMEOUT:.0f} s:\n{''.join(err)}")
            time.sleep(0.05)
        yield Serving(url, port, home, proc, out, err)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
