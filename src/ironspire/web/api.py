"""The JSON twins: every page's records under ``/api/``, the same ones the CLI's ``--json`` prints.

- /settings/providers: /api/settings/providers (default + providers + health), and apart
  /api/providers (`providers list --json`), /api/health (`providers check --all --json` entries
  as last known) and /api/default (`default show --json`);
- the agents sidebar: /api/agents (`agents list --json`);
- /agents/{name} (chat): /api/agents/{name} (`agents show --json`), /api/agents/{name}/history
  (`history --json`, ``?all=1`` for `--all`) and /api/agents/{name}/hud (the Session HUD);
- /agents/new and /agents/{name}/configure: /api/models (`models list --json`, ``?provider=``).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ironspire.web import records
from ironspire.web.state import web
from ironspire.web.urls import AgentRoute


async def providers(request: Request) -> Response:
    return JSONResponse([v.to_json() for v in records.providers(web(request).ws)])


async def health(request: Request) -> Response:
    return JSONResponse(list(records.health(web(request).ws).values()))


async def default(request: Request) -> Response:
    return JSONResponse(records.default(web(request).ws))


async def settings_providers(request: Request) -> Response:
    ws = web(request).ws
    return JSONResponse({"default": records.default(ws), "providers": [v.to_json() for v in records.providers(ws)],
                         "health": list(records.health(ws).values())})


async def agents(request: Request) -> Response:
    return JSONResponse([a.to_json() for a in records.agents(web(request).ws)])


async def agent(request: Request) -> Response:
    ws = web(request).ws
    return JSONResponse(records.agent_detail(ws, ws.agent(request.path_params["name"])).to_json())


async def history(request: Request) -> Response:
    ws = web(request).ws
    everything = request.query_params.get("all") in ("1", "true", "yes")
    entries = records.history(ws, ws.agent(request.path_params["name"]), include_unanswered=everything)
    return JSONResponse([e.to_json() for e in entries])


async def hud(request: Request) -> Response:
    ws = web(request).ws
    return JSONResponse(records.hud(ws, ws.agent(request.path_params["name"])))


async def models(request: Request) -> Response:
    ws = web(request).ws
    provider = request.query_params.get("provider") or None
    if provider is not None:
        provider = ws.provider(provider).id  # an unknown id is refused with suggestions
    return JSONResponse([m.to_json() for m in records.models(ws, provider)])


def routes() -> list[BaseRoute]:
    return [
        Route("/api/settings/providers", settings_providers),
        Route("/api/providers", providers),
        Route("/api/health", health),
        Route("/api/default", default),
        AgentRoute("/api/agents", agents),
        AgentRoute("/api/agents/{name}", agent),
        AgentRoute("/api/agents/{name}/history", history),
        AgentRoute("/api/agents/{name}/hud", hud),
        Route("/api/models", models),
    ]
