"""The Analytics panel as records: the filter bar's choices and each tab's figures, built from a
Workspace's ledger (``ironspire.analytics``). The web app renders them and serves them as JSON
twins; nothing here knows HTML.

Filters come from a URL's query (``Filters.parse``), so a view can be bookmarked: ``period``
(``session``, ``1h`` ... ``90d``, ``custom`` with ``from``/``to`` ISO dates or times), ``agent``
(a name, or all), ``group`` (a provider group, or all). Bad values are refused with a clear error
naming the parameter, never silently replaced.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from ironspire.analytics import GROUP_TITLES, PROVIDER_GROUPS
from ironspire.errors import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ironspire.workspace import Workspace

PERIOD_CHOICES = ("session", "1h", "6h", "24h", "7d", "30d", "90d", "custom")
TABS = (("overview", "Overview"), ("fleet", "Fleet"), ("models", "Models & providers"), ("turns", "Turns"),
        ("reliability", "Reliability"))
OUTCOME_CHOICES = ("all", "ok", "fallback", "error", "RateLimitError", "AuthenticationError", "ProviderUnavailable",
                   "BadRequest", "cancelled")
#: how the filter control names a choice where its value alone would not say what it keeps
#: (``fallback``: the successful requests of fallback routes, the turns' stand-in answers)
OUTCOME_LABELS = {"fallback": "answered by a fallback"}
FLEET_SORTS = ("agent", "health", "model", "provider", "session_cost_usd", "cost_usd", "total_tokens", "turns",
               "errors", "uptime_s")


@dataclass(frozen=True, slots=True)
class Filters:
    period: str = "24h"
    start: str | None = None
    end: str | None = None
    agent: str | None = None
    group: str | None = None

    @classmethod
    def parse(cls, query: Mapping[str, str]) -> Filters:
        period = query.get("period") or "24h"
        if period not in PERIOD_CHOICES:
            raise ConfigurationError(f"period={period!r} is not a period.",
                                     hint="Use " + ", ".join(PERIOD_CHOICES) + ".")
        start, end = (query.get("from") or None), (query.get("to") or None)
        if period == "custom" and not (start or end):
            raise ConfigurationError("a custom period needs from= and/or to= (ISO dates, e.g. 2026-11-01).")
        group = query.get("group") or None
        if group is not None and group not in PROVIDER_GROUPS:
            raise ConfigurationError(f"group={group!r} is not a provider group.",
                                     hint="Use " + ", ".join(PROVIDER_GROUPS) + ".")
        return cls(period, start if period == "custom" else None, end if period == "custom" else None,
                   query.get("agent") or None, group)

    @property
    def period_arg(self) -> str:
        """The period as ``ironspire.analytics`` takes it (a custom range as ``START..END``)."""
        return f"{self.start or ''}..{self.end or ''}" if self.period == "custom" else self.period

    def args(self) -> dict[str, Any]:
        return {"agent": self.agent, "group": self.group}

    def query(self, **extra: Any) -> str:
        """The URL query of these filters (and ``extra``), for links that keep them."""
        values = {"period": self.period, "from": self.start, "to": self.end, "agent": self.agent,
                  "group": self.group, **extra}
        return urlencode({k: v for k, v in values.items() if v not in (None, "")})

    def to_json(self) -> dict[str, Any]:
        return {"period": self.period, "from": self.start, "to": self.end, "agent": self.agent, "group": self.group}


@dataclass(frozen=True, slots=True)
class Choices:
    """What the filter bar offers."""

    agents: list[str]
    groups: list[tuple[str, str]] = field(default_factory=lambda: list(GROUP_TITLES.items()))
    periods: tuple[str, ...] = PERIOD_CHOICES


@dataclass(frozen=True, slots=True)
class TabView:
    """One tab's figures for the filters (``data``: JSON-ready), as the page and its twin show them."""

    tab: str
    filters: Filters
    data: dict[str, Any]
    stamp: int
    """The ledger's newest row id when read: a page polls it to know when to refresh."""

    def to_json(self) -> dict[str, Any]:
        return {"tab": self.tab, "filters": self.filters.to_json(), "stamp": self.stamp, **self.data}


def choices(ws: Workspace) -> Choices:
    return Choices(sorted(a.name for a in ws.agents()))


def stamp(ws: Workspace) -> int:
    return ws.store.ledger.stamp()


def tab(ws: Workspace, name: str, filters: Filters, query: Mapping[str, str] | None = None,
        now: float | None = None) -> TabView:
    """The figures of tab ``name`` (``TABS``) for ``filters``; ``query`` carries the tab's own
    parameters (Fleet: ``sort``/``dir``; Turns: ``outcome``/``page``)."""
    query = query or {}
    if filters.agent is not None and filters.agent not in {a.name for a in ws.agents()} \
            and filters.agent not in ws.store.ledger.agent_names().values():
        raise ConfigurationError(f"agent={filters.agent!r} is not an agent of this workspace.")
    build = {"overview": _overview, "fleet": _fleet, "models": _models, "turns": _turns,
             "reliability": _reliability}.get(name)
    if build is None:
        raise ConfigurationError(f"unknown Analytics tab {name!r}.", hint="Use " + ", ".join(t for t, _ in TABS) + ".")
    mark = stamp(ws)
    return TabView(name, filters, build(ws, filters, query, now), mark)


def _overview(ws: Workspace, f: Filters, query: Mapping[str, str], now: float | None) -> dict[str, Any]:
    a = ws.analytics
    kpis = a.kpis(f.period_arg, now=now, **f.args())
    return {"kpis": kpis, "series": a.series(f.period_arg, now=now, **f.args())}


def _fleet(ws: Workspace, f: Filters, query: Mapping[str, str], now: float | None) -> dict[str, Any]:
    from ironspire import views

    now = time.time() if now is None else now
    sort = query.get("sort") or "cost_usd"
    if sort not in FLEET_SORTS:
        raise ConfigurationError(f"sort={sort!r} is not a Fleet column.", hint="Use " + ", ".join(FLEET_SORTS) + ".")
    descending = (query.get("dir") or ("asc" if sort in ("agent", "model", "provider", "health") else "desc")) == "desc"
    live = {v.name: v for v in views.agents(ws)}
    session = {r["agent"]: r for r in ws.analytics.fleet("session", now=now, **f.args())}
    rows = []
    for r in ws.analytics.fleet(f.period_arg, now=now, **f.args()):
        view = live.get(r["agent"])
        provider = view.provider if view is not None else r["provider"]
        model = view.model if view is not None else r["model"]
        health = ws.health.status(provider).state.value if provider else "no route"
        mine = session.get(r["agent"])
        rows.append({**r, "live": view is not None, "provider": provider, "model": model, "health": health,
                     "last_provider": r["provider"], "last_model": r["model"],
                     "session_cost_usd": mine["cost_usd"] if mine else 0.0,
                     "uptime_s": max(0.0, now - r["created_at"])})
    rows.sort(key=lambda r: (r[sort] is None, r[sort] if r[sort] is not None else 0), reverse=descending)
    return {"rows": rows, "sort": sort, "dir": "desc" if descending else "asc"}


def _models(ws: Workspace, f: Filters, query: Mapping[str, str], now: float | None) -> dict[str, Any]:
    from ironspire.catalog.providers import BUILTIN_PROVIDERS

    unbilled = {p.id for p in BUILTIN_PROVIDERS if not p.billed}
    a = ws.analytics
    models = a.breakdown("model", f.period_arg, now=now, **f.args())
    providers = a.breakdown("provider", f.period_arg, now=now, **f.args())
    for r in (*models, *providers):
        r["billed"] = r["provider"] not in unbilled
    return {"models": models, "providers": providers}


def _turns(ws: Workspace, f: Filters, query: Mapping[str, str], now: float | None) -> dict[str, Any]:
    from ironspire.analytics import error_class

    outcome = query.get("outcome") or "all"
    if outcome not in OUTCOME_CHOICES:
        raise ConfigurationError(f"outcome={outcome!r} is not an outcome.", hint="Use " + ", ".join(OUTCOME_CHOICES))
    try:
        page = int(query.get("page") or 1)
    except ValueError:
        raise ConfigurationError(f"page={query.get('page')!r} is not a page number.") from None
    found = ws.analytics.turns_page(f.period_arg, outcome=None if outcome == "all" else outcome, page=page,
                                    per_page=50, now=now, **f.args())
    for r in found["rows"]:
        r["error_class"] = None if r["outcome"] == "ok" else error_class(r["outcome"])
    return {"outcome": outcome, **found}


def _reliability(ws: Workspace, f: Filters, query: Mapping[str, str], now: float | None) -> dict[str, Any]:
    a = ws.analytics
    start, end = a.span(f.period_arg, now=now, **f.args())
    return {"start": start, "end": end, **a.reliability(f.period_arg, now=now, **f.args())}


def with_period(f: Filters, period: str) -> Filters:
    return replace(f, period=period, start=None, end=None)
