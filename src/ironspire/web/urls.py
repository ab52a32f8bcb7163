"""Agent URLs, both ways: the one place a name becomes a path and a path becomes a name.

An agent's name may hold any printable character (``ops/east``, ``what?``, ``#1``, ``50% done``,
``über agent``), so it travels as ONE path segment, percent-encoded whole (``quote(safe="")``,
``encodeURIComponent`` in a script): ``/agents/ops%2Feast/configure``. Starlette routes on the
decoded path, where ``ops%2Feast/configure`` and ``ops/east/configure`` are the same string, so
the agent routes here match the raw (still encoded) path instead, split on its real slashes:
an agent named ``x/configure`` has the chat page ``/agents/x%2Fconfigure`` and is never the
configure page of ``x``.

Three names cannot be sent as themselves: ``.`` and ``..`` (a browser resolves dot segments,
even encoded ones, before sending) and the words the app's own paths use there (``new``,
``models``). Their segment carries a trailing encoded space, which no stored name can end in
(names are stored stripped), so reading it back strips it off and nothing else can collide.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote, unquote, unquote_to_bytes, urlsplit

from starlette.routing import Match, Route
from starlette.types import Scope

#: the segments under /agents that are the app's own paths, not agents'
RESERVED = frozenset({".", "..", "new", "models"})
PAD = "%20"
NAME = "{name}"


def segment(name: str) -> str:
    """The path segment that stands for ``name`` (and only for it)."""
    encoded = quote(name, safe="")
    return encoded + PAD if name in RESERVED else encoded


def name_of(raw: str) -> str:
    """The name a raw path segment stands for (the inverse of ``segment``): percent escapes are
    read as UTF-8, and the padding of a reserved name, like any edge space, goes (a stored name
    never has one)."""
    return unquote_to_bytes(raw).decode("utf-8", "replace").strip()


def agent_path(name: str, action: str = "", *, api: bool = False) -> str:
    """``/agents/NAME[/ACTION]`` (or ``/api/agents/...``); the templates' ``agent_url`` filter."""
    base = ("/api/agents/" if api else "/agents/") + segment(name)
    return f"{base}/{action}" if action else base


def local_path(target: str | None, default: str) -> str:
    """A redirect target that came with the request (a header, a form field) is followed only
    when it is a path on this server: ``//host``, ``/\\host``, a scheme, or a tab/newline that
    browsers drop (``/\\t/host`` is ``//host`` to them) would send the user elsewhere."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return default
    if "\\" in target or any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in target):
        return default
    parts = urlsplit(target)
    return default if parts.scheme or parts.netloc else target


def sent_path(scope: Scope) -> str:
    """The request's path as the client sent it (still percent-encoded); rebuilt from the decoded
    path (where a slash in a name cannot be told apart) only when the server gave no ``raw_path``."""
    raw = scope.get("raw_path")
    return bytes(raw).split(b"?", 1)[0].decode("latin-1") if raw else quote(scope.get("path", "/"), safe="/")


def raw_segments(scope: Scope) -> list[str] | None:
    """The segments of the path as sent, below the root path."""
    raw = sent_path(scope)
    root = quote(scope.get("root_path", ""), safe="/")
    if root and raw.startswith(root + "/"):
        raw = raw[len(root):]
    if not raw.startswith("/"):
        return None
    return raw[1:].split("/")


class AgentRoute(Route):
    """A route under ``/agents`` or ``/api/agents`` matched segment by segment on the raw path:
    literal segments compare decoded, ``{name}`` takes one whole encoded segment."""

    def __init__(self, path: str, endpoint: Callable[..., Any], *, methods: Sequence[str] | None = None) -> None:
        super().__init__(path, endpoint, methods=list(methods) if methods else None)
        self.pattern = path.strip("/").split("/")

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http":
            return Match.NONE, {}
        raw = raw_segments(scope)
        if raw is None or len(raw) != len(self.pattern):
            return Match.NONE, {}
        params: dict[str, Any] = {}
        for want, got in zip(self.pattern, raw, strict=True):
            decoded = unquote(got)
            if want == NAME:
                if not decoded.strip() or decoded in RESERVED:
                    return Match.NONE, {}  # the app's own path (or nothing), never an agent
                params["name"] = name_of(got)
            elif decoded != want:
                return Match.NONE, {}
        child = {"endpoint": self.endpoint, "path_params": {**scope.get("path_params", {}), **params}}
        if self.methods and scope["method"] not in self.methods:
            return Match.PARTIAL, child
        return Match.FULL, child
