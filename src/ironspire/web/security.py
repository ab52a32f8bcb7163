"""What stands between the browser and a process that holds every provider key.

The app listens on loopback, but loopback is not a boundary on its own: any web page the user
opens can make their browser send requests to 127.0.0.1, and a DNS-rebinding page can even read
the answers. So, as Jupyter does, every request must carry a secret made for this launch:

* the URL printed at start-up carries it once (``?token=...``); the first request with it gets
  an HttpOnly, SameSite=Strict cookie and is redirected to the same URL without it, so the token
  leaves the address bar and the history;
* scripts may send it as ``Authorization: Bearer ...`` instead;
* the Host header must name this server (a rebinding page arrives with its own host name);
* every state change (any method but GET/HEAD) must also carry the CSRF token that the pages
  embed, as the ``X-CSRF-Token`` header or a ``csrf_token`` form field, and must not come from
  another site (``Origin`` / ``Sec-Fetch-Site``);
* every answer has a Content-Security-Policy without inline script, and is never cached.

Form bodies are read here (url-encoded only, bounded) and handed to the route already parsed, so
a route cannot forget the check and nothing needs python-multipart.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Iterable
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ironspire.web.urls import local_path, sent_path

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_FORM_BYTES = 1_000_000
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),  # "no-referrer" makes browsers send Origin: null on forms
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
)
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Secrets:
    """The per-launch token, and the CSRF token derived from it (so the two never travel apart)."""

    def __init__(self, token: str | None = None) -> None:
        self.token = token or secrets.token_urlsafe(32)
        self.csrf = hmac.new(self.token.encode(), b"ironspire-csrf", hashlib.sha256).hexdigest()

    def token_ok(self, candidate: str | None) -> bool:
        return bool(candidate) and hmac.compare_digest(str(candidate).encode(), self.token.encode())

    def csrf_ok(self, candidate: str | None) -> bool:
        return bool(candidate) and hmac.compare_digest(str(candidate).encode(), self.csrf.encode())


def allowed_hosts(host: str, port: int) -> frozenset[str]:
    """Host header values this server answers to: the bound address, and loopback names when it
    listens on loopback (or on every interface, which includes loopback)."""
    names = {host}
    if is_loopback(host) or host in ("0.0.0.0", "::"):
        names.update(LOOPBACK_NAMES)
    shown = {f"[{n}]" if ":" in n and not n.startswith("[") else n for n in names}
    return frozenset({f"{n}:{port}" for n in shown} | ({*shown} if port == 80 else set()))


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _cookies(scope: Scope) -> dict[str, str]:
    raw = _header(scope, b"cookie")
    if not raw:
        return {}
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except Exception:  # a malformed cookie header is treated as no cookie at all
        return {}
    return {k: v.value for k, v in jar.items()}


class SecurityMiddleware:
    """Pure ASGI, so that streamed answers (SSE) pass through untouched."""

    def __init__(self, app: ASGIApp, *, secrets: Secrets, hosts: Iterable[str], cookie_name: str) -> None:
        self.app = app
        self.secrets = secrets
        self.hosts = frozenset(h.lower() for h in hosts)
        self.cookie_name = cookie_name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            await _plain(send, 404, "Not found.")
            return
        send = _with_headers(send)
        host = (_header(scope, b"host") or "").lower()
        if host not in self.hosts:
            await _plain(send, 403, f"Refused: this server does not answer to the host {host!r} "
                                    "(a DNS-rebinding guard). Open the URL that `ironspire serve` printed.")
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        given = query.get("token", [None])[0]
        if given is not None and scope["method"] == "GET":
            if not self.secrets.token_ok(given):
                await _plain(send, 401, "That token is not this launch's. Open the URL `ironspire serve` printed.")
                return
            rest = urlencode([(k, v) for k, vs in query.items() if k != "token" for v in vs], doseq=True)
            # the path as sent (``/agents/ops%2Feast`` stays that), and only ever a path here
            location = local_path(sent_path(scope), "/") + (f"?{rest}" if rest else "")
            cookie = (f"{self.cookie_name}={self.secrets.token}; HttpOnly; SameSite=Strict; Path=/")
            await _redirect(send, location, cookie)
            return
        if not self._authenticated(scope):
            await _plain(send, 401, "Not signed in: open the URL with the token that `ironspire serve` printed "
                                    "(it is new at every launch).")
            return
        if scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        refusal = self._cross_site(scope, host)
        if refusal:
            await _plain(send, 403, refusal)
            return
        header_token = _header(scope, b"x-csrf-token")
        content_type = (_header(scope, b"content-type") or "").split(";")[0].strip().lower()
        if content_type == "application/x-www-form-urlencoded":
            body = await _read_body(receive)
            if body is None:
                await _plain(send, 413, "The form is too large.")
                return
            form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
            if not (self.secrets.csrf_ok(header_token) or self.secrets.csrf_ok(form.get("csrf_token", [None])[0])):
                await _plain(send, 403, "Refused: the form lacks this page's CSRF token. Reload the page and retry.")
                return
            scope.setdefault("state", {})["form"] = {k: v[-1] for k, v in form.items() if k != "csrf_token"}
            await self.app(scope, _replay(body), send)
            return
        if content_type == "multipart/form-data":
            await _plain(send, 415, "Send forms url-encoded.")
            return
        if not self.secrets.csrf_ok(header_token):
            await _plain(send, 403, "Refused: the request lacks this page's CSRF token (X-CSRF-Token).")
            return
        await self.app(scope, receive, send)

    def _authenticated(self, scope: Scope) -> bool:
        if self.secrets.token_ok(_cookies(scope).get(self.cookie_name)):
            return True
        auth = _header(scope, b"authorization") or ""
        return auth.lower().startswith("bearer ") and self.secrets.token_ok(auth[7:].strip())

    def _cross_site(self, scope: Scope, host: str) -> str | None:
        site = (_header(scope, b"sec-fetch-site") or "").lower()
        if site and site not in ("same-origin", "none"):
            return f"Refused: a {site} request may not change anything here."
        origin = _header(scope, b"origin")
        if origin and origin != "null":
            netloc = urlsplit(origin).netloc.lower()
            if netloc != host:
                return f"Refused: a request from {origin} may not change anything here."
        elif origin == "null":
            return "Refused: a request from an opaque origin may not change anything here."
        return None


def _with_headers(send: Send) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            present = {k.lower() for k, _ in message.get("headers", [])}
            headers = list(message.get("headers", []))
            headers += [(k, v) for k, v in SECURITY_HEADERS if k not in present]
            message = {**message, "headers": headers}
        await send(message)

    return wrapped


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


async def _plain(send: Send, status: int, text: str) -> None:
    body = (text + "\n").encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _redirect(send: Send, location: str, cookie: str) -> None:
    await send({"type": "http.response.start", "status": 303,
                "headers": [(b"location", location.encode()), (b"set-cookie", cookie.encode()),
                            (b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})


def form_of(scope: Any) -> dict[str, str]:
    """The url-encoded form the middleware read and checked (empty when there was none)."""
    state = scope.get("state") or {}
    form = state.get("form") if isinstance(state, dict) else None
    return dict(form) if isinstance(form, dict) else {}
