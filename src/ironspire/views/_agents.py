"""Agent rows for the fleet (CLI `agents list`, the web sidebar): route, where it comes from, and
why its next turn may fail."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ironspire.errors import Remedy, enable_remedy, set_default_remedy
from ironspire.views._providers import provider as provider_view
from ironspire.views.notices import health_warning
from ironspire.views.records import (
    AgentAlert,
    AgentView,
    BudgetView,
    DefaultRouteView,
    FallbackView,
    HistoryEntryView,
    ProviderView,
)

if TYPE_CHECKING:
    from ironspire.workspace import Agent, Workspace
    from ironspire.workspace.budgets import BudgetState


def agents(ws: Workspace) -> list[AgentView]:
    cards: dict[str, ProviderView] = {}  # one credential read per provider, however many agents use it
    shared = workspace_budget(ws)  # one ledger query for the workspace budget, however many agents
    return [_view(ws, a, cards, shared) for a in ws.agents()]


def agent(ws: Workspace, name: str, *, detail: bool = False) -> AgentView:
    """One agent; ``detail`` adds its history size (what `agents show` prints)."""
    a = ws.agent(name)
    view = _view(ws, a, {}, workspace_budget(ws))
    if not detail:
        return view
    from dataclasses import replace

    counts = ws.store.message_counts(a.id)  # a count, not a read of the whole history
    return replace(view, messages=counts.get("ok", 0), unanswered=counts.get("unanswered", 0))


def history(ws: Workspace, name: str, *, unanswered: bool = False, limit: int | None = None
            ) -> list[HistoryEntryView]:
    """An agent's conversation, oldest first, across every provider it was on; ``unanswered``
    also returns the messages of failed turns (kept, never sent again as answered); ``limit``
    keeps the newest that many (a page: only those are read)."""
    entries = ws.agent(name).transcript(limit=limit, unanswered=unanswered)
    return [HistoryEntryView(e.message, e.status, e.at) for e in entries]


def default_route(ws: Workspace) -> DefaultRouteView:
    default = ws.default
    provider, model = default if default else (None, None)
    return DefaultRouteView(provider, model, tuple(str(r) for r in ws.default_fallback), workspace_budget(ws))


def budget_view(state: BudgetState) -> BudgetView:
    return BudgetView(state.scope, state.name, state.budget.usd, state.budget.period, state.spent,
                      state.unknown_turns, state.resets_at, state.level, state.warning())


def workspace_budget(ws: Workspace) -> BudgetView | None:
    state = ws.budget_state()
    return None if state is None else budget_view(state)


def agent_budgets(ws: Workspace, a: Agent, shared: BudgetView | None = None) -> tuple[BudgetView, ...]:
    """The budgets ``a``'s turns count against, its own first (what `ask` warns about at 80%)."""
    own = ws.budget_state(a)
    return tuple(b for b in (None if own is None else budget_view(own), shared) if b is not None)


def _view(ws: Workspace, a: Agent, cards: dict[str, ProviderView], shared: BudgetView | None) -> AgentView:
    route = a.route
    chain = a.fallback_chain
    pid = route.provider if route else None
    warning = health_warning(ws, pid)
    return AgentView(
        name=a.name,
        provider=pid,
        model=route.model if route else None,
        inherited=a.inherits,
        own_provider=a.own_provider,
        own_model=a.own_model,
        system=a.system,
        warning=warning,
        alert=_alert(ws, a.name, pid, warning, cards),
        effort=a.effort,
        fallback=FallbackView(tuple(str(r) for r in chain), a.fallback is None) if chain else None,
        budgets=agent_budgets(ws, a, shared),
    )


def _alert(ws: Workspace, name: str, pid: str | None, warning: str | None,
           cards: dict[str, ProviderView]) -> AgentAlert | None:
    """The most basic reason first: no route, a disabled provider, a missing value, bad health."""
    if pid is None:
        return AgentAlert("no_route", f"{name} has no provider: the workspace default is not set.",
                          set_default_remedy(name))
    card = cards.get(pid)
    if card is None:
        card = cards[pid] = provider_view(ws, pid)
    if not card.enabled:
        return AgentAlert("disabled", f"{pid} is disabled", enable_remedy(pid, name))
    if card.missing:
        return AgentAlert("credentials_missing", f"{pid} has no {card.missing[0]}", card.remedy)
    if warning is not None:
        return AgentAlert("unhealthy", warning, _switch(ws, name, pid))
    return None


def _switch(ws: Workspace, name: str, pid: str) -> Remedy:
    """Move the agent off ``pid``; the default route is offered where it is elsewhere and not known
    to be failing (the history is kept either way)."""
    to_provider = to_model = None
    default = ws.default
    if default is not None and default[0] != pid and ws.is_enabled(default[0]):
        state = ws.health.status(default[0]).state
        if state in ("reachable", "unknown"):
            to_provider, to_model = default
    return Remedy("switch_agent", {"agent": name, "from": pid, "provider": to_provider, "model": to_model},
                  f"Move it with `ironspire agents set {name} --provider P --model M` (its history is kept).")
