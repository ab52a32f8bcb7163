"""What every route shares: the open workspace and its live parts (``Web``, on
``app.state.web``), the template environment, the tabs, and small response helpers.

Tabs are data (``TABS``): a panel is a route module with a ``routes()`` function, listed in
``app.create_app``, plus an entry here, so adding one (Analytics) touches nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ironspire.views import AgentView
from ironspire.views.formatting import tokens
from ironspire.web import records
from ironspire.web.live import HealthFeed, Turns
from ironspire.web.remedies import button
from ironspire.web.security import Secrets
from ironspire.web.urls import agent_path

if TYPE_CHECKING:
    from ironspire.workspace import Workspace

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Tab:
    id: str
    title: str
    path: str


#: the main panel's tabs, in order (Analytics joins here)
TABS: list[Tab] = [
    Tab("chat", "Chat", "/agents"),
    Tab("analytics", "Analytics", "/analytics"),
    Tab("providers", "Settings › Providers", "/settings/providers"),
]


class Web:
    """What every route needs, kept on ``app.state.web``."""

    def __init__(self, ws: Workspace, secrets: Secrets, *, check_on_start: bool = True) -> None:
        self.ws = ws
        self.secrets = secrets
        self.feed = HealthFeed(ws, lambda: records.configured(ws))
        self.turns = Turns()
        self.check_on_start = check_on_start
        self.env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]),
                               trim_blocks=True, lstrip_blocks=True)
        self.env.filters["utc"] = utc
        self.env.filters["tokens"] = tokens
        self.env.filters["agent_url"] = agent_path
        self.env.globals["tabs"] = TABS
        self.env.globals["button"] = button

    def render(self, request: Request, template: str, *, status: int = 200, tab: str = "", **context: Any) -> Response:
        agents = records.agents(self.ws)
        body = self.env.get_template(template).render(
            request=request, csrf=self.secrets.csrf, active_tab=tab, sidebar=agents,
            reassign=self.reassign_choices(agents), **context)
        return HTMLResponse(body, status_code=status)

    def reassign_choices(self, agents: list[AgentView]) -> dict[str, tuple[str, str] | None]:
        """For each agent with a warning badge, the healthy route a one-click reassign would take."""
        out: dict[str, tuple[str, str] | None] = {}
        routes: dict[str | None, list[tuple[str, str]]] = {}
        for a in agents:
            if a.alert is not None:
                if a.provider not in routes:
                    routes[a.provider] = records.healthy_routes(self.ws, exclude=a.provider)
                found = routes[a.provider]
                out[a.name] = found[0] if found else None
        return out


def web(request: Request) -> Web:
    """The app's shared state, with the workspace's configuration brought up to date once per
    request: the CLI beside the server (or another server) may have changed it."""
    w: Web = request.app.state.web
    if not getattr(request.state, "fresh", False):
        w.ws.refresh()
        request.state.fresh = True
    return w


def utc(moment: Any) -> str:
    return moment.strftime("%H:%M:%S UTC") if moment is not None else ""


def wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


def back(path: str, status: int = 303) -> Response:
    return RedirectResponse(path, status_code=status)
