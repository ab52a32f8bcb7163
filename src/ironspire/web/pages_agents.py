"""Agent configuration (create and reconfigure) and the sidebar's one-click reassign.

The route picker lists every model of every enabled provider, grouped by provider family, with
chips for context window, tools, vision and reasoning and its prices; "System default" means
the agent inherits the workspace default. Discovered models (Ollama, custom endpoints, listing
providers) are there once discovered; the refresh asks those providers again.
"""

from __future__ import annotations

import asyncio
import unicodedata
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from ironspire.errors import ConfigurationError, IronspireError
from ironspire.web import records
from ironspire.web.security import form_of
from ironspire.web.state import back, wants_json, web
from ironspire.web.urls import AgentRoute, agent_path, local_path
from ironspire.workspace.effort import DEFAULT_EFFORT, EFFORT_LABELS, check_effort

INHERIT = "__default__"


def model_groups(ws: Any) -> list[dict[str, Any]]:
    """Enabled providers' models (the view layer's records, with their chips and prices), by
    provider family in the Providers tab's order."""
    by_provider: dict[str, list[Any]] = {}
    for m in records.models(ws):
        by_provider.setdefault(m.provider, []).append(m)
    out = []
    for pid in ws.provider_ids():
        if ws.is_enabled(pid) and by_provider.get(pid):
            spec = ws.provider(pid)
            out.append({"id": pid, "name": spec.display_name, "group": spec.group, "models": by_provider[pid]})
    return out


def _has_spending(form: dict[str, str]) -> bool:
    """A JSON client that sends no fallback or budget field leaves both as they are; the page's
    form always sends them."""
    return any(k in form for k in ("fallback", "fallback_inherit", "budget_usd"))


def parse_route(value: str) -> tuple[str | None, str | None]:
    if not value or value == INHERIT:
        return None, None
    provider, sep, model = value.partition("|")
    if not sep or not provider or not model:
        raise ConfigurationError(f"choose a provider and model (got {value!r}).")
    return provider, model


def _form_context(ws: Any, agent: Any | None, form: dict[str, str] | None = None,
                  error: str | None = None) -> dict[str, Any]:
    if form is None:
        route = INHERIT if agent is None or agent.inherits else f"{agent.own_provider}|{agent.own_model}"
        form = {"name": agent.name if agent else "", "system": (agent.system or "") if agent else "",
                "route": route, "effort": agent.effort if agent else DEFAULT_EFFORT, **_fallback_fields(agent)}
    elif "name" in form:  # a refused name is shown back without its control characters (the error names them)
        form = {**form, "name": "".join(c if c == " " or unicodedata.category(c)[0] not in ("C", "Z") else "\ufffd"
                                        for c in form["name"])}
    return {"agent": agent, "form": form, "error": error, "groups": model_groups(ws), "inherit": INHERIT,
            "efforts": EFFORT_LABELS, "default": records.default(ws)}


def _fallback_fields(agent: Any | None) -> dict[str, str]:
    """The form's fallback and budget fields as the agent has them now (a new agent: the
    workspace's chain, no budget)."""
    own = None if agent is None else agent.fallback
    budget = None if agent is None else agent.budget
    return {"fallback_inherit": "1" if own is None else "", "fallback": ", ".join(str(r) for r in own or ()),
            "budget_usd": "" if budget is None else f"{budget.usd:g}",
            "budget_period": "month" if budget is None else budget.period}


@dataclass(frozen=True, slots=True)
class Spending:
    """The form's fallback chain and budget, checked before anything is written: ``fallback``
    None inherits the workspace's chain, ``()`` is none; ``budget`` None is no budget."""

    fallback: tuple[Any, ...] | None
    budget: Any | None

    def apply(self, agent: Any) -> None:
        agent.set_fallback(None if self.fallback is None else list(self.fallback))
        agent.set_budget(None if self.budget is None else self.budget.usd,
                         "month" if self.budget is None else self.budget.period)


def check_spending(ws: Any, form: dict[str, str]) -> Spending:
    """Routes typed in replace the workspace's chain; with none, the box says whether the agent
    inherits it or has no fallbacks. Each route must exist and be enabled now (a typo fails here,
    not at the first outage); a budget is a positive amount of USD per day or month."""
    from ironspire.workspace import budgets

    routes = form.get("fallback", "").strip()
    # routes typed in win; an empty field means the workspace's chain when that box is ticked
    chain = ws.check_fallback(routes) if routes else None if form.get("fallback_inherit") else ()
    text = form.get("budget_usd", "").strip().lstrip("$")
    empty = not text or text.lower() == "none"
    budget = None if empty else budgets.make_budget(text, form.get("budget_period") or "month")
    return Spending(chain, budget)


async def new_agent(request: Request) -> Response:
    w = web(request)
    return w.render(request, "agent_form.html", tab="chat", **_form_context(w.ws, None))


async def create_agent(request: Request) -> Response:
    w = web(request)
    form = form_of(request.scope)
    try:
        provider, model = parse_route(form.get("route", INHERIT))
        spending = check_spending(w.ws, form) if _has_spending(form) else None
        agent = w.ws.create_agent(form.get("name", ""), provider, model, form.get("system", "").strip() or None,
                                  effort=form.get("effort") or DEFAULT_EFFORT)
        if spending is not None:
            spending.apply(agent)
    except IronspireError as exc:
        if wants_json(request):
            raise
        return w.render(request, "agent_form.html", status=400, tab="chat",
                        **_form_context(w.ws, None, form, str(exc)))
    if wants_json(request):
        return JSONResponse(records.agent(w.ws, agent).to_json(), status_code=201)
    return back(agent_path(agent.name))


async def configure_page(request: Request) -> Response:
    w = web(request)
    agent = w.ws.agent(request.path_params["name"])
    return w.render(request, "agent_form.html", tab="chat", **_form_context(w.ws, agent))


async def configure(request: Request) -> Response:
    """Reconfigure: every field is checked before any is written, so a bad one changes nothing."""
    w = web(request)
    agent = w.ws.agent(request.path_params["name"])
    form = form_of(request.scope)
    try:
        provider, model = parse_route(form.get("route", INHERIT))
        w.ws.check_route(provider, model)
        effort = check_effort(form.get("effort") or agent.effort)
        spending = check_spending(w.ws, form) if _has_spending(form) else None
    except IronspireError as exc:
        if wants_json(request):
            raise
        form.setdefault("name", agent.name)
        return w.render(request, "agent_form.html", status=400, tab="chat",
                        **_form_context(w.ws, agent, form, str(exc)))
    agent.switch(provider, model)
    if "system" in form:
        agent.set_system(form["system"].strip() or None)
    agent.set_effort(effort)
    if spending is not None:
        spending.apply(agent)
    if wants_json(request):
        return JSONResponse(records.agent(w.ws, agent).to_json())
    return back(agent_path(agent.name))


async def reassign(request: Request) -> Response:
    """One click: moves the agent to a healthy provider (the form may name one); history kept."""
    w = web(request)
    agent = w.ws.agent(request.path_params["name"])
    route = agent.route
    choice = form_of(request.scope).get("route")
    if choice:
        provider, model = parse_route(choice)
    else:
        healthy = records.healthy_routes(w.ws, exclude=route.provider if route else None)
        if not healthy:
            raise ConfigurationError("no healthy provider to move the agent to.",
                                     hint="Check the providers in Settings › Providers first.")
        provider, model = healthy[0]
    agent.switch(provider, model)
    if wants_json(request):
        return JSONResponse(records.agent(w.ws, agent).to_json())
    return back(local_path(request.headers.get("x-return-to"), agent_path(agent.name)))


async def refresh_models(request: Request) -> Response:
    """Asks every enabled provider that lists its models at runtime what it serves now."""
    w = web(request)
    ws = w.ws
    pids = [pid for pid in ws.provider_ids() if ws.is_enabled(pid) and ws.provider(pid).lists_models]
    await asyncio.gather(*(ws.discover_models(pid, refresh=True, connect_timeout=2.0) for pid in pids))
    target = local_path(form_of(request.scope).get("return_to"), "/agents/new")
    return back(target if target.startswith("/agents") else "/agents/new")


def routes() -> list[BaseRoute]:
    return [
        AgentRoute("/agents/new", new_agent),
        AgentRoute("/agents/models/refresh", refresh_models, methods=["POST"]),
        AgentRoute("/agents", create_agent, methods=["POST"]),
        AgentRoute("/agents/{name}/configure", configure_page),
        AgentRoute("/agents/{name}/configure", configure, methods=["POST"]),
        AgentRoute("/agents/{name}/reassign", reassign, methods=["POST"]),
    ]
