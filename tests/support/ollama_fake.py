"""A real HTTP server on 127.0.0.1, in a thread, answering fixed routes; used by the discovery tests.

Each route maps (method, path) to (status, JSON-able body or raw bytes). Every request is logged
so a test can assert what was (or was not) asked, e.g. that a cached listing made no request.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Routes = dict[tuple[str, str], tuple[int, Any]]


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


class LoopbackServer:
    def __init__(self, routes: Routes) -> None:
        self.routes = routes
        self.requests: list[Seen] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw
                key = (self.command, self.path)
                server.requests.append(Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                                            body))
                if key == ("POST", "/api/show") and isinstance(body, dict):
                    key = ("POST", f"/api/show:{body.get('model')}")
                status, payload = server.routes.get(key, (404, {"error": "not found"}))
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = _answer
            do_POST = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def paths(self) -> list[str]:
        return [f"{r.method} {r.path}" for r in self.requests]

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


@contextmanager
def serving(routes: Routes) -> Iterator[LoopbackServer]:
    with LoopbackServer(routes) as server:
        yield server


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
