"""The ASGI app: one open Workspace shared by every request, pages, their JSON twins, and the
security middleware in front of all of it. A new panel (Analytics) adds its route module to
``create_app`` and its tab to ``state.TABS``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from ironspire.errors import IronspireError
from ironspire.web import api, pages_agents, pages_analytics, pages_chat, pages_manage, pages_providers
from ironspire.web.security import Secrets, SecurityMiddleware, allowed_hosts
from ironspire.web.state import HERE, Web, back, wants_json, web

if TYPE_CHECKING:
    from ironspire.workspace import Workspace

async def _error(request: Request, exc: Exception) -> Response:
    """Bad input anywhere: a clear message, nothing changed (every route validates before writing)."""
    assert isinstance(exc, IronspireError)
    body = {"error": type(exc).__name__, "message": exc.message, "hint": exc.hint}
    if request.url.path.startswith("/api/") or wants_json(request):
        return JSONResponse(body, status_code=400)
    return web(request).render(request, "error.html", status=400, error=body)


def create_app(ws: Workspace, *, host: str = "127.0.0.1", port: int = 8780, secrets: Secrets | None = None,
               check_on_start: bool = True) -> Starlette:
    """The app around an open workspace; the caller keeps ownership of ``ws`` (and closes it)."""
    state = Web(ws, secrets or Secrets(), check_on_start=check_on_start)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state.feed.start(lambda: float(ws.setting("health_interval")))
        try:
            yield
        finally:
            await state.turns.stop_all()
            await state.feed.stop()

    routes: list[BaseRoute] = [
        Route("/", lambda r: back("/agents", 302)),
        *pages_providers.routes(),
        *pages_agents.routes(),
        *pages_manage.routes(),
        *pages_chat.routes(),
        *pages_analytics.routes(),
        *api.routes(),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    middleware = [Middleware(SecurityMiddleware, secrets=state.secrets, hosts=allowed_hosts(host, port),
                             cookie_name=f"ironspire-token-{port}")]
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan,
                    exception_handlers={IronspireError: _error})
    app.state.web = state
    return app
