"""A failed turn as the chat panel shows it: the typed error, its hint, and the one action that
fixes it, as a button. The action names are the same the CLI's hints spell out in words."""

from __future__ import annotations

from typing import Any

from ironspire.errors import (
    AuthenticationError,
    CapabilityError,
    ConfigurationError,
    ContextWindowExceeded,
    CredentialsMissing,
    IronspireError,
    ModelNotFound,
    ProviderUnavailable,
    RateLimitError,
    redact,
)

#: what each action's button says
LABELS = {
    "set_key": "Set the key",
    "enable_provider": "Enable the provider",
    "reassign": "Move the agent to a healthy provider",
    "configure": "Choose another model",
    "retry": "Retry",
}


def remedy_for(exc: BaseException, agent: str, provider: str | None) -> dict[str, Any] | None:
    """The structured remedy an error carries, or the one its type implies."""
    carried = getattr(exc, "remedy", None)
    if carried is not None and getattr(carried, "action", None):
        args = dict(getattr(carried, "args", {}) or {})
        action = str(carried.action)
        return {"action": action, "args": args, "label": LABELS.get(action, action.replace("_", " ").capitalize())}
    pid = getattr(exc, "provider", None) or provider
    if isinstance(exc, CredentialsMissing | AuthenticationError) and pid:
        field = getattr(exc, "field", "api_key")
        return {"action": "set_key", "args": {"provider": pid, "field": field}, "label": LABELS["set_key"]}
    if isinstance(exc, RateLimitError | ProviderUnavailable):
        return {"action": "reassign", "args": {"agent": agent}, "label": LABELS["reassign"]}
    if isinstance(exc, ContextWindowExceeded | CapabilityError | ModelNotFound):
        return {"action": "configure", "args": {"agent": agent}, "label": LABELS["configure"]}
    if isinstance(exc, ConfigurationError) and pid is None and provider and "disabled" in str(exc):
        return {"action": "enable_provider", "args": {"provider": provider}, "label": LABELS["enable_provider"]}
    return None


def error_record(exc: BaseException, agent: str, provider: str | None) -> dict[str, Any]:
    if isinstance(exc, IronspireError):
        message, hint = exc.message, exc.hint
    else:  # not one of ours: say what it was, never a traceback
        message, hint = redact(f"{type(exc).__name__}: {exc}"), "This is a bug in Ironspire; please report it."
    return {"type": type(exc).__name__, "message": message, "hint": hint,
            "remedy": remedy_for(exc, agent, provider)}
