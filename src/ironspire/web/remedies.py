"""A remedy as a button: the view layer's ``Remedy(action, args)`` turned into the request that
performs it here, so a failed turn or a sidebar badge offers the fix in one click. The words are
the remedy's own ``text`` (what the CLI prints), so the two cannot drift apart."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from ironspire import views
from ironspire.errors import IronspireError, Remedy, redact
from ironspire.web.urls import agent_path

PAGE = "/settings/providers"


def button(remedy: Remedy | None, agent: str | None = None) -> dict[str, Any] | None:
    """``{"label", "method" (get|post), "url", "fields"}``, or None where nothing is one click."""
    if remedy is None:
        return None
    a = dict(remedy.args)
    pid = a.get("provider")
    who = a.get("agent") or agent
    card = f"{PAGE}#card-{quote(str(pid))}" if pid else PAGE
    action = remedy.action
    if action in ("set_key", "set_setting"):
        return {"label": "Set the key" if action == "set_key" else f"Set {a.get('name', 'it')}", "method": "get",
                "url": card, "fields": {}}
    if action == "enable_provider" and pid:
        return {"label": f"Enable {pid}", "method": "post", "url": f"{PAGE}/{quote(str(pid))}/enable", "fields": {}}
    if action == "check_provider" and pid:
        return {"label": f"Check {pid} now", "method": "post", "url": f"{PAGE}/{quote(str(pid))}/check", "fields": {}}
    if action == "switch_agent" and who:
        fields = {"route": f"{pid}|{a['model']}"} if pid and a.get("model") and a.get("from") != pid else {}
        return {"label": "Move the agent to a healthy provider", "method": "post",
                "url": agent_path(str(who), "reassign"), "fields": fields}
    if action == "set_default":
        return {"label": "Choose the default", "method": "get", "url": f"{PAGE}#default-picker", "fields": {}}
    if action in ("choose_model", "shorten_history") and who:
        return {"label": "Choose another model", "method": "get", "url": agent_path(str(who), "configure"),
                "fields": {}}
    if action == "retry":
        return {"label": "Retry", "method": "retry", "url": "", "fields": {}}
    return None


def error_record(exc: BaseException, agent: str) -> dict[str, Any]:
    """A failed turn for the page: the typed error (the view layer's record) and its button; a
    failure that is not one of ours is named, never shown as a traceback."""
    if isinstance(exc, IronspireError):
        view = views.error(exc)
        record = view.to_json()
        record["button"] = button(view.remedy, agent)
        if view.remedy is not None and record["button"] is not None and view.remedy.action == "retry":
            # a throttled provider: waiting is one way, moving the agent the other
            record["alternative"] = button(Remedy("switch_agent", {"agent": agent}), agent)
        return record
    return {"type": type(exc).__name__, "message": redact(f"{type(exc).__name__}: {exc}"),
            "hint": "This is a bug in Ironspire; please report it.", "provider": None, "model": None,
            "remedy": None, "button": None}
