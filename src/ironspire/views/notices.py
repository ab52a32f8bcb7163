"""The one-line notices printed around a turn: a provider known to be unhealthy before it, the
fallback that answered after it.

Kept apart from ``records`` (the dataclasses of every page) so that `ironspire ask`, which
prints these and nothing else of the view layer, does not build every record class first: that
was ~15-20 ms of each `ask` on this VM, for lines that are usually not printed at all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ironspire.messages import Message
    from ironspire.workspace import Workspace


def health_warning(ws: Workspace, pid: str | None) -> str | None:
    """A short warning when the provider is known to be unhealthy (unknown counts as fine)."""
    if pid is None:
        return None
    status = ws.health.status(pid)
    if status.healthy or status.state == "unknown":
        return None
    state = status.state.value.replace("_", " ")
    return f"{pid} is {state}" + (f": {status.detail}" if status.detail else "")


def fallback_notice(message: Message) -> str | None:
    """``answered by P/M (fallback; P/M: RateLimitError)`` for a reply a fallback gave, else None."""
    record = message.meta.get("fallback")
    if not isinstance(record, dict):
        return None
    why = "; ".join(f"{a['provider']}/{a['model']}: {a['outcome']}" for a in record.get("attempts", ())
                    if a.get("outcome") != "ok")
    return f"answered by {record.get('answered')} (fallback" + (f"; {why}" if why else "") + ")"
