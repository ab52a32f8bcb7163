"""Trimming, resetting and deleting an agent from the web app (issue 17 item 7).

Each is a POST behind the CSRF check like every other change, and each asks first: a POST
without ``confirm=yes`` changes nothing and answers with a page saying exactly what would be
deleted (a button there sends it again confirmed); a JSON caller gets a 409 saying to confirm.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from ironspire.errors import ConfigurationError
from ironspire.web.security import form_of
from ironspire.web.state import back, wants_json, web
from ironspire.web.urls import AgentRoute, agent_path


def _count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        raise ConfigurationError(f"drop last takes a whole number of messages, not {text!r}.") from None
    if count < 1:
        raise ConfigurationError("drop last needs a number of messages of 1 or more.")
    return count


async def _manage(request: Request, action: str) -> Response:
    w = web(request)
    agent = w.ws.agent(request.path_params["name"])
    form = form_of(request.scope)
    stored = w.ws.store.counts_for(agent.id)
    count = _count(form.get("count", "").strip()) if action == "drop" else stored
    question = {
        "drop": f"Delete the newest {min(count, stored)} of {stored} messages of {agent.name}?",
        "reset": f"Delete all {stored} messages of {agent.name}? Its route and system prompt stay.",
        "delete": f"Delete the agent {agent.name} and its {stored} messages? Its usage stays in the ledger.",
    }[action]
    if form.get("confirm") != "yes":
        if wants_json(request):
            return JSONResponse({"error": "ConfirmationNeeded", "message": question,
                                 "hint": "Send the same request with confirm=yes to do it."}, status_code=409)
        return w.render(request, "confirm.html", tab="chat", agent=agent, question=question, action=action,
                        count=count if action == "drop" else None)
    done: dict[str, int | str]
    if action == "drop":
        done = {"dropped": agent.drop_last(count)}
    elif action == "reset":
        done = {"dropped": agent.reset()}
    else:
        w.ws.delete_agent(agent.name)
        done = {"deleted": agent.name}
    if wants_json(request):
        return JSONResponse(done)
    return back("/" if action == "delete" else agent_path(agent.name))


async def drop_last(request: Request) -> Response:
    return await _manage(request, "drop")


async def reset(request: Request) -> Response:
    return await _manage(request, "reset")


async def delete(request: Request) -> Response:
    return await _manage(request, "delete")


def routes() -> list[BaseRoute]:
    return [
        AgentRoute("/agents/{name}/drop-last", drop_last, methods=["POST"]),
        AgentRoute("/agents/{name}/reset", reset, methods=["POST"]),
        AgentRoute("/agents/{name}/delete", delete, methods=["POST"]),
    ]
