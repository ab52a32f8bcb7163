"""The chat panel: history across switches, streamed replies (SSE), Stop, switching in place,
failed turns with their remedy, and the Session HUD.

A reply is started with a POST (CSRF-checked) and read from ``/turns/{id}/events``, a GET the
browser's EventSource can open; the turn runs as its own task, so Stop (another POST) cancels it
exactly as Ctrl-C cancels a CLI turn: the history is left as it was.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from ironspire.errors import ConfigurationError
from ironspire.messages import (
    Finish,
    Message,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    ToolResult,
    UsageEvent,
)
from ironspire.views import fallback_notice
from ironspire.web import records
from ironspire.web.live import Turn
from ironspire.web.pages_agents import model_groups, parse_route
from ironspire.web.remedies import error_record
from ironspire.web.security import form_of
from ironspire.web.state import back, wants_json, web
from ironspire.web.urls import AgentRoute, agent_path

SSE_HEADERS = {"cache-control": "no-store", "x-accel-buffering": "no"}


def message_view(m: Message, status: str = "ok") -> dict[str, Any]:
    return {
        "role": m.role, "provider": m.provider, "model": m.model, "status": status, "text": m.text,
        "reasoning": m.reasoning, "fallback": fallback_notice(m),
        "tool_calls": [{"id": c.id, "name": c.name, "arguments": json.dumps(dict(c.arguments), ensure_ascii=False)}
                       for c in m.tool_calls],
        "tool_results": [{"name": p.tool_name, "text": p.text(), "is_error": p.is_error}
                         for p in m.parts if isinstance(p, ToolResult)],
    }


def render_event(event: Any) -> tuple[str, Any] | None:
    """A stream event as the page wants it; signatures and other opaque values stay server-side."""
    if isinstance(event, TextDelta):
        return ("text", {"text": event.text}) if event.text else None
    if isinstance(event, ReasoningDelta):
        return ("reasoning", {"text": event.text}) if event.text else None
    if isinstance(event, ToolCallStart):
        return "tool_call", {"index": event.index, "id": event.id, "name": event.name}
    if isinstance(event, ToolCallDelta):
        return "tool_args", {"index": event.index, "arguments": event.arguments}
    if isinstance(event, ToolCallEnd):
        return "tool_end", {"index": event.index}
    if isinstance(event, UsageEvent):
        u = event.usage
        return "usage", {"input": u.input, "output": u.output, "cache_read": u.cache_read,
                         "cache_write": u.cache_write, "reasoning": u.reasoning}
    if isinstance(event, Finish):
        return "finish", {"reason": event.reason}
    return None


async def agents_index(request: Request) -> Response:
    w = web(request)
    agents = w.ws.agents()
    if agents:
        return back(agent_path(agents[0].name), 302)
    return w.render(request, "no_agents.html", tab="chat")


async def chat_page(request: Request) -> Response:
    w = web(request)
    ws = w.ws
    agent = ws.agent(request.path_params["name"])
    transcript = [message_view(e.message, e.status) for e in records.history(ws, agent, include_unanswered=True)]
    running = w.turns.running(agent.name)
    return w.render(request, "chat.html", tab="chat", agent=agent, record=records.agent(ws, agent),
                    transcript=transcript, hud=records.hud(ws, agent), groups=model_groups(ws),
                    running=running.id if running else None)


async def switch(request: Request) -> Response:
    """Switching in place: the same history, re-encoded for the new provider at the next turn."""
    w = web(request)
    agent = w.ws.agent(request.path_params["name"])
    if w.turns.running(agent.name):
        raise ConfigurationError(f"{agent.name} is replying; stop the reply or wait before switching.")
    provider, model = parse_route(form_of(request.scope).get("route", ""))
    agent.switch(provider, model)
    if wants_json(request):
        return JSONResponse({"agent": records.agent(w.ws, agent).to_json(), "hud": records.hud(w.ws, agent)})
    return back(agent_path(agent.name))


async def start_turn(request: Request) -> Response:
    w = web(request)
    ws = w.ws
    agent = ws.agent(request.path_params["name"])
    text = form_of(request.scope).get("message", "")
    if not text.strip():
        raise ConfigurationError("the message is empty; nothing was sent.")
    if w.turns.running(agent.name):
        raise ConfigurationError(f"{agent.name} is still replying; stop that reply first.")
    route = agent.route
    user = {"role": "user", "text": text}

    def finish(a: Any, turn: Turn, error: BaseException | None) -> None:
        import asyncio

        hud = records.hud(ws, a)
        if error is None:
            last = a.history[-1] if a.history else None
            turn.push("done", {"message": message_view(last) if last else None, "hud": hud})
        elif isinstance(error, asyncio.CancelledError):
            turn.push("stopped", {"hud": hud, "note": "Stopped: no reply was saved; your message is kept as "
                                                       "unanswered, and the history is as it was."})
        else:
            turn.push("failed", {"error": error_record(error, a.name), "hud": hud})
        w.feed.publish()

    turn = w.turns.start(agent, text, render_event, finish)
    return JSONResponse({"id": turn.id, "events": f"/turns/{turn.id}/events", "stop": f"/turns/{turn.id}/stop",
                         "user": user, "provider": route.provider if route else None,
                         "model": route.model if route else None}, status_code=202)


async def turn_events(request: Request) -> Response:
    turn = web(request).turns.get(request.path_params["turn"])
    if turn is None:
        return JSONResponse({"error": "unknown turn"}, status_code=404)
    try:
        start = int(request.headers.get("last-event-id", "0"))
    except ValueError:
        start = 0
    return StreamingResponse(turn.stream(start), media_type="text/event-stream", headers=SSE_HEADERS)


async def stop_turn(request: Request) -> Response:
    w = web(request)
    turn = w.turns.get(request.path_params["turn"])
    if turn is None:
        return JSONResponse({"error": "unknown turn"}, status_code=404)
    await w.turns.stop(turn)
    return JSONResponse({"stopped": True, "id": turn.id})


async def health_events(request: Request) -> Response:
    return StreamingResponse(web(request).feed.listen(), media_type="text/event-stream", headers=SSE_HEADERS)


def routes() -> list[BaseRoute]:
    return [
        AgentRoute("/agents", agents_index),
        AgentRoute("/agents/{name}", chat_page),
        AgentRoute("/agents/{name}/switch", switch, methods=["POST"]),
        AgentRoute("/agents/{name}/turns", start_turn, methods=["POST"]),
        Route("/turns/{turn}/events", turn_events),
        Route("/turns/{turn}/stop", stop_turn, methods=["POST"]),
        Route("/events/health", health_events),
    ]
