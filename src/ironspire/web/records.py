"""The records the pages show and the JSON twins return: the same ones the CLI's ``--json`` prints.

Everything here is read from the workspace and masked before it leaves; no function returns a
secret. They are the view layer's records (``ironspire.views``): the pages render them, the
``/api/`` twins return their ``to_json()``. The Session HUD is the one record built here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from ironspire import views
from ironspire.views import AgentView, HistoryEntryView, ModelView, ProviderView

if TYPE_CHECKING:
    from ironspire.health import HealthMonitor
    from ironspire.workspace import Agent, Workspace

CLAUDE_SDK_TERMS = ("Uses the locally installed Claude Code CLI under your own Claude plan (Max or Pro); "
                    "Anthropic's terms for that plan apply.")


def monitor(ws: Workspace) -> HealthMonitor:
    """The workspace's health monitor (``ws.health`` is typed loosely so tests can replace it)."""
    return cast("HealthMonitor", ws.health)


def providers(ws: Workspace) -> list[ProviderView]:
    """The cards, in Settings > Providers order (`ironspire providers list --json` as records)."""
    return views.providers(ws)


def health(ws: Workspace) -> dict[str, dict[str, Any]]:
    """Last known health per provider, as `ironspire providers check --json` prints each entry."""
    return {h.provider: h.to_json() for h in views.health(ws)}


def configured(ws: Workspace) -> list[str]:
    return views.configured_ids(ws)


def default(ws: Workspace) -> dict[str, Any]:
    """`ironspire default show --json`."""
    return views.default_route(ws).to_json()


def agents(ws: Workspace) -> list[AgentView]:
    return views.agents(ws)


def agent(ws: Workspace, a: Agent) -> AgentView:
    return views.agent(ws, a.name)


def agent_detail(ws: Workspace, a: Agent) -> AgentView:
    """`ironspire agents show --json`."""
    return views.agent(ws, a.name, detail=True)


def history(ws: Workspace, a: Agent, *, include_unanswered: bool = False) -> list[HistoryEntryView]:
    """`ironspire history AGENT --json` as records (``--all`` with ``include_unanswered``)."""
    return views.history(ws, a.name, unanswered=include_unanswered)


def models(ws: Workspace, provider: str | None = None) -> list[ModelView]:
    """`ironspire models list --json` as records (the workspace's registry, discovered models too)."""
    return views.models(ws, provider=provider)


def healthy_routes(ws: Workspace, exclude: str | None = None) -> list[tuple[str, str]]:
    """Provider/model pairs an agent could be moved to now: enabled, configured and last seen
    reachable; the default route first when it qualifies."""
    from ironspire.health import HealthState

    wanted = set(configured(ws))
    out: list[tuple[str, str]] = []
    d = ws.default
    for pid in ws.provider_ids():
        if pid == exclude or pid not in wanted or ws.health.status(pid).state is not HealthState.REACHABLE:
            continue
        if d is not None and d[0] == pid:
            out.insert(0, d)
            continue
        listed = ws.registry.list(provider=pid)
        if listed:
            out.append((pid, listed[0].id))
    return out


#: the context bar turns red at this share of the window, and pulses from the second
CONTEXT_WARN, CONTEXT_ALARM = 0.70, 0.90


def context_level(used: int, window: int) -> tuple[float, str]:
    share = used / window if window > 0 else 0.0
    level = "alarm" if share >= CONTEXT_ALARM else "warn" if share >= CONTEXT_WARN else "ok"
    return share, level


def hud(ws: Workspace, a: Agent) -> dict[str, Any]:
    """The Session HUD: the model in force (an override noted as such), this session's cost for
    the agent (billed, and API-equivalent where a subscription or local model bills nothing),
    and how full the context window is: the history's tokens over the model's window.

    The history's size is the larger of two measures: the last reply's own count (the prompt the
    provider read plus what it wrote), when it reported one, and the pre-flight estimate."""
    from ironspire.protocols.base import ChatRequest
    from ironspire.workspace.preflight import estimate_tokens

    route = a.route
    record: dict[str, Any] = {"agent": a.name, "provider": None, "model": None, "model_name": None,
                              "override": not a.inherits, "effort": a.effort}
    kpis = ws.analytics.kpis("session", agent=a.name)
    billed, api = float(kpis["total_spend_usd"]), kpis["api_equivalent_usd"]
    from ironspire.views.formatting import money

    record["cost"] = {"billed_usd": round(billed, 6), "api_equivalent_usd": None if api is None else round(api, 6),
                      "differs": api is not None and abs(float(api) - billed) > 1e-9,
                      "billed_text": money(billed), "api_text": None if api is None else money(float(api))}
    history = a.history
    estimate = estimate_tokens(ChatRequest(messages=tuple(history), system=a.system))
    last = next((m for m in reversed(history) if m.role == "assistant" and m.usage is not None), None)
    reported = (last.usage.prompt + last.usage.output) if last is not None and last.usage is not None else 0
    used = max(estimate, reported)
    window = 0
    reasons = True  # a model we know nothing about: the level is not called unused
    if route is not None:
        record["provider"], record["model"] = route.provider, route.model
        try:
            spec = ws.target(route.provider, route.model).model if ws.is_enabled(route.provider) else \
                ws.registry.get(route.provider, route.model) if route.model else None
        except Exception:
            spec = ws.registry.find(route.provider, route.model) if route.model else None
        if spec is not None:
            record["model"], record["model_name"], window = spec.id, spec.display_name, spec.context_window
            reasons = spec.reasoning
    # the agent's effort level goes out only to a model that reasons (agent.effort_applies):
    # the chip says so instead of suggesting a local model is thinking harder
    record["effort_used"] = reasons
    record["effort_text"] = f"effort {a.effort}" + ("" if reasons else " · unused")
    record["effort_title"] = ("The agent's effort level, sent with each turn as the model's reasoning control."
                              if reasons else "This model does not reason, so the level is kept for the agent "
                              "but not sent; it applies again on a model that reasons.")
    share, level = context_level(used, window)
    record["context"] = {"tokens": used, "window": window, "share": round(share, 4), "level": level}
    view = agent(ws, a)
    record["fallback"] = None if view.fallback is None else view.fallback.to_json()
    record["budget_warning"] = view.budget_warning
    answered = next((m for m in reversed(history) if m.role == "assistant"), None)
    record["last_fallback"] = None if answered is None else views.fallback_notice(answered)
    return record
