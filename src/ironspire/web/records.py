"""The records the pages show and the JSON twins return: the same ones the CLI's ``--json`` prints.

Everything here is read from the workspace and masked before it leaves; no function returns a
secret. The pages render these dicts, the ``/api/`` twins return them as they are.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from ironspire.catalog.providers import GROUP_TITLES, GROUPS

if TYPE_CHECKING:
    from ironspire.health import HealthMonitor
    from ironspire.workspace import Agent, Workspace

CLAUDE_SDK_TERMS = ("Uses the locally installed Claude Code CLI under your own Claude plan (Max or Pro); "
                    "Anthropic's terms for that plan apply.")


def monitor(ws: Workspace) -> HealthMonitor:
    """The workspace's health monitor (``ws.health`` is typed loosely so tests can replace it)."""
    return cast("HealthMonitor", ws.health)


def providers(ws: Workspace) -> list[dict[str, Any]]:
    """`ironspire providers list --json`."""
    from ironspire.cli.providers import _full_record

    return [_full_record(ws, ws.provider(pid)) for pid in ws.provider_ids()]


def providers_one(ws: Workspace, pid: str) -> dict[str, Any]:
    from ironspire.cli.providers import _full_record

    return _full_record(ws, ws.provider(pid))


def health(ws: Workspace) -> dict[str, dict[str, Any]]:
    """Last known health per provider (`ironspire providers check --json` entries)."""
    return {pid: status.to_dict() for pid, status in monitor(ws).statuses().items()}


def configured(ws: Workspace) -> list[str]:
    from ironspire.cli.providers import configured_ids

    return configured_ids(ws)


def default(ws: Workspace) -> dict[str, Any]:
    """`ironspire default show --json`."""
    d = ws.default
    return {"provider": d[0], "model": d[1]} if d else {"provider": None, "model": None}


def agent(ws: Workspace, a: Agent) -> dict[str, Any]:
    """`ironspire agents list --json` entry: route, inherited or own, effort, warning (unhealthy,
    disabled, or missing a credential)."""
    from ironspire.cli._workspace import agent_record

    return agent_record(ws, a)


def agents(ws: Workspace) -> list[dict[str, Any]]:
    return [agent(ws, a) for a in ws.agents()]


def agent_detail(ws: Workspace, a: Agent) -> dict[str, Any]:
    """`ironspire agents show --json`."""
    record = agent(ws, a)
    record["messages"] = len(a.history)
    record["unanswered"] = sum(1 for e in a.transcript() if e.status == "unanswered")
    return record


def history(a: Agent, *, include_unanswered: bool = False) -> list[dict[str, Any]]:
    """`ironspire history AGENT --json` (``--all`` with ``include_unanswered``)."""
    import json

    return [{**json.loads(e.message.to_json()), "status": e.status, "at": e.at}
            for e in a.transcript() if include_unanswered or e.status == "ok"]


def model(m: Any) -> dict[str, Any]:
    """`ironspire models list --json` entry."""
    from ironspire.cli.models import _record

    return _record(m)


def models(ws: Workspace, provider: str | None = None) -> list[dict[str, Any]]:
    return [model(m) for m in ws.registry.list(provider=provider)]


def grouped(records: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """Provider records in the spec's order: Primary, Cloud, OpenAI-compatible, then Custom."""
    out = []
    for group in GROUPS:
        members = [r for r in records if r["group"] == group]
        out.append((GROUP_TITLES[group], members))
    return out


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
    record["cost"] = {"billed_usd": round(billed, 6), "api_equivalent_usd": None if api is None else round(api, 6),
                      "differs": api is not None and abs(float(api) - billed) > 1e-9}
    history = a.history
    estimate = estimate_tokens(ChatRequest(messages=tuple(history), system=a.system))
    last = next((m for m in reversed(history) if m.role == "assistant" and m.usage is not None), None)
    reported = (last.usage.prompt + last.usage.output) if last is not None and last.usage is not None else 0
    used = max(estimate, reported)
    window = 0
    if route is not None:
        record["provider"], record["model"] = route.provider, route.model
        try:
            spec = ws.target(route.provider, route.model).model if ws.is_enabled(route.provider) else \
                ws.registry.get(route.provider, route.model) if route.model else None
        except Exception:
            spec = ws.registry.find(route.provider, route.model) if route.model else None
        if spec is not None:
            record["model"], record["model_name"], window = spec.id, spec.display_name, spec.context_window
    share, level = context_level(used, window)
    record["context"] = {"tokens": used, "window": window, "share": round(share, 4), "level": level}
    return record
