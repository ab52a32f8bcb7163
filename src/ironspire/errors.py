"""One error hierarchy for the whole product.

Every error says which provider (and model, where known) it concerns and what the user can do
about it, because the person reading it is usually running a fleet of agents and needs to know
which one broke and how to fix it without reading a traceback. Messages never carry secrets:
provider text is passed through ``redact`` before it is stored on an error.

    IronspireError
     +-- ConfigurationError
     +-- CredentialsMissing
     +-- CapabilityError
     +-- BudgetExceeded
     +-- ProviderError
          +-- AuthenticationError
          +-- RateLimitError (retry_after)
          +-- ProviderUnavailable
          +-- BadRequest
          |    +-- ContextWindowExceeded
          +-- ModelNotFound
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

_SECRET_PATTERNS = [
    re.compile(r"\b(sk-[A-Za-z0-9_\-]{8,})"),
    re.compile(r"\b(xai-[A-Za-z0-9_\-]{8,})"),
    re.compile(r"\b(gsk_[A-Za-z0-9_\-]{8,})"),
    re.compile(r"\b(AIza[0-9A-Za-z_\-]{20,})"),
    re.compile(r"\b((?:AKIA|ASIA)[0-9A-Z]{12,})"),
    re.compile(r"(?i)(bearer\s+)([A-Za-z0-9._\-]{8,})"),
]

_known_secrets: set[str] = set()


def register_secret(value: str) -> None:
    """Remember a credential so that ``redact`` removes it wherever it shows up."""
    if len(value) >= 4:
        _known_secrets.add(value)


def mask(value: str) -> str:
    """A credential as it may be shown to a person: enough to recognise it, not to use it."""
    if len(value) <= 8:
        return "*" * len(value)
    return f"{value[:3]}…{value[-4:]}"


#: the shortest piece of a known secret that is removed wherever it appears: providers echo
#: parts of a key ("...key[2:-2]...") that a full-key match would miss
FRAGMENT = 8
REDACTED = "[redacted]"


def _remove_fragments(text: str, secrets: Iterable[str]) -> str:
    """Replaces every run of text made of FRAGMENT-character pieces of a secret. Each piece is
    looked for with ``str.find`` (C speed), so a long text costs pieces x length, not a Python loop."""
    spans: list[tuple[int, int]] = []
    for secret in secrets:
        if len(secret) < FRAGMENT:
            continue
        for i in range(len(secret) - FRAGMENT + 1):
            piece = secret[i:i + FRAGMENT]
            at = text.find(piece)
            while at != -1:
                spans.append((at, at + FRAGMENT))
                at = text.find(piece, at + 1)
    if not spans:
        return text
    spans.sort()
    merged: list[list[int]] = []
    for start, stop in spans:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], stop)
        else:
            merged.append([start, stop])
    out, end = [], 0
    for start, stop in merged:
        out += [text[end:start], REDACTED]
        end = stop
    out.append(text[end:])
    return "".join(out)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Removes known and secret-looking values, and any FRAGMENT-long piece of a known secret,
    from text that will be shown or stored."""
    known = sorted({*_known_secrets, *secrets}, key=len, reverse=True)
    for s in known:
        if s and s in text:
            text = text.replace(s, mask(s))
    text = _remove_fragments(text, known)
    for pattern in _SECRET_PATTERNS:
        if pattern.groups == 2:
            text = pattern.sub(lambda m: m.group(1) + mask(m.group(2)), text)
        else:
            text = pattern.sub(lambda m: mask(m.group(1)), text)
    return text


RemedyAction: TypeAlias = Literal[
    "set_key",  # store a credential: provider, field (env: the variable that would do too)
    "set_setting",  # set a provider setting: provider, name (and value, where the right one is known)
    "enable_provider",  # provider
    "switch_agent",  # move an agent (or the default) off provider/model to another one
    "set_default",  # choose the workspace default route (agent: the one that needs it)
    "choose_model",  # pick another model: provider, model, suggestions, capability
    "pull_model",  # download a model to a local server: provider, model
    "retry",  # wait and send again: provider, after (seconds, may be None)
    "check_provider",  # run a health check now: provider
    "shorten_history",  # the conversation is over the window: provider, model
    "set_budget",  # raise or remove a spending budget: scope ("agent"/"workspace"), agent, period
]


@dataclass(frozen=True, slots=True)
class Remedy:
    """What the user can do about an error, as data: an action and its arguments.

    A terminal prints ``text``; a browser renders a button for ``action`` that calls the same
    operation with ``args``. Keeping both in one value means the words and the button never
    drift apart.
    """

    action: RemedyAction
    args: Mapping[str, Any] = field(default_factory=dict)
    text: str = ""
    """The sentence a terminal shows (already naming the `ironspire ...` command)."""

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action, "args": dict(self.args), "text": self.text}


def set_key_remedy(provider: str, field_name: str = "api_key", env: str | None = None) -> Remedy:
    how = f"run `ironspire providers set-key {provider}`"
    if field_name != "api_key":
        how = f"run `ironspire providers set-key {provider} --field {field_name}`"
    if env:
        how += f" or set {env}"
    return Remedy("set_key", {"provider": provider, "field": field_name, "env": env}, f"To fix: {how}.")


def enable_remedy(provider: str, agent: str | None = None) -> Remedy:
    return Remedy("enable_provider", {"provider": provider, "agent": agent},
                  f"Run `ironspire providers enable {provider}`, or switch the agent to another provider.")


def set_default_remedy(agent: str | None = None) -> Remedy:
    text = "Run `ironspire default set PROVIDER MODEL`"
    text += f" or `ironspire agents set {agent} --provider P --model M`." if agent else "."
    return Remedy("set_default", {"agent": agent}, text)


def pull_remedy(provider: str, model: str) -> Remedy:
    return Remedy("pull_model", {"provider": provider, "model": model},
                  f"Download it with `ollama pull {model}`, or see `ironspire models list --provider {provider}`.")


class IronspireError(Exception):
    """Base of every error Ironspire raises on purpose.

    ``hint`` is the text a person reads; it is the remedy's text unless a more specific hint was
    given (or assigned later, as adapters do once they know more).
    """

    remedy: Remedy | None = None
    _hint: str | None = None
    #: the routes a turn went through before this error, when the agent has fallbacks
    #: (``workspace.fallback.Attempt`` records, oldest first); empty otherwise
    attempts: tuple[Any, ...] = ()

    def __init__(self, message: str, *, hint: str | None = None, remedy: Remedy | None = None) -> None:
        self.message = redact(message)
        if remedy is not None:
            self.remedy = remedy
        if hint is not None:
            self._hint = hint
        super().__init__(self.message)

    @property
    def hint(self) -> str:
        if self._hint is not None:
            return self._hint
        return self.remedy.text if self.remedy is not None else ""

    @hint.setter
    def hint(self, value: str) -> None:
        self._hint = value

    def __str__(self) -> str:
        if not self.hint:
            return self.message
        # the message is often provider text without a full stop; keep two sentences apart
        sep = " " if self.message.rstrip().endswith((".", "!", "?", ":")) else ". "
        return f"{self.message.rstrip()}{sep}{self.hint}"


class ConfigurationError(IronspireError):
    """Settings are missing or contradict each other."""


class TurnNotSaved(IronspireError):
    """The reply arrived (and may have been shown) but the turn could not be stored: a full disk,
    a read-only home. ``recovery`` is the file the reply was written to instead, if any."""

    def __init__(self, agent: str, reason: str, recovery: str | None) -> None:
        self.agent, self.reason, self.recovery = agent, reason, recovery
        kept = (f"the message and the reply are kept in {recovery}" if recovery
                else "the reply could not be written anywhere else either")
        super().__init__(f"{agent}: the reply was received but the turn was NOT saved ({reason}); {kept}.",
                         hint="Free disk space or make the Ironspire home writable, then send the message again.")


class CredentialsMissing(IronspireError):
    def __init__(self, provider: str, field: str = "api_key", env: str | None = None) -> None:
        self.provider, self.field = provider, field
        super().__init__(f"{provider}: no {field} is configured.", remedy=set_key_remedy(provider, field, env))


class CapabilityError(IronspireError):
    def __init__(self, provider: str, model: str, capability: str, detail: str = "") -> None:
        self.provider, self.model, self.capability = provider, model, capability
        super().__init__(
            f"{provider}/{model} does not support {capability}{': ' + detail if detail else ''}.",
            remedy=Remedy("choose_model", {"provider": provider, "model": model, "capability": capability},
                          "Choose a model that has it (`ironspire models list --capability "
                          f"{capability}`), or change the degradation policy in settings."),
        )


def usd(amount: float) -> str:
    """Dollars as people read them: cents for sums of a dollar or more, four places below it."""
    return f"${amount:,.2f}" if abs(amount) >= 1 else f"${amount:.4f}"


class BudgetExceeded(IronspireError):
    """A spending budget is used up: the turn was refused before anything was sent.

    ``scope`` is "agent" or "workspace"; ``spent`` the billed cost counted in the period (turns of
    unknown cost are not in it, they are counted in ``unknown_turns``); ``resets_at`` the Unix
    time the period ends.
    """

    def __init__(self, scope: str, name: str | None, limit: float, period: str, spent: float,
                 resets_at: float, unknown_turns: int = 0) -> None:
        from datetime import UTC, datetime

        self.scope, self.name, self.limit, self.period = scope, name, limit, period
        self.spent, self.resets_at, self.unknown_turns = spent, resets_at, unknown_turns
        which = f"agent {name!r}'s" if scope == "agent" else "the workspace's"
        reset = datetime.fromtimestamp(resets_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
        unknown = f" (plus {unknown_turns} turn(s) of unknown cost)" if unknown_turns else ""
        command = f"ironspire agents set {name} --budget USD" if scope == "agent" else "ironspire default budget USD"
        every = {"day": "daily", "month": "monthly"}.get(period, period)
        super().__init__(
            f"{which} {every} budget of {usd(limit)} is used up: {usd(spent)} spent{unknown}; it resets at {reset}.",
            remedy=Remedy("set_budget", {"scope": scope, "agent": name, "period": period, "limit": limit},
                          f"Wait for the reset, or raise the budget with `{command}`."),
        )


class ProviderError(IronspireError):
    """A provider refused or failed a request.

    Without a specific hint, each kind of failure gets its class's remedy: ``default_action``
    with the provider and model as arguments, and ``default_hint`` as its words.
    """

    default_hint = "Check `ironspire providers check` and try again."
    default_action: RemedyAction | None = "check_provider"

    def __init__(
        self,
        provider: str,
        message: str,
        *,
        model: str | None = None,
        status: int | None = None,
        hint: str | None = None,
        raw: str | None = None,
        remedy: Remedy | None = None,
    ) -> None:
        self.provider, self.model, self.status = provider, model, status
        self.raw = redact(raw) if raw else None
        where = f"{provider}/{model}" if model else provider
        code = f" (HTTP {status})" if status else ""
        if remedy is None and hint is None:
            remedy = self._default_remedy(provider, model)
            if remedy is None:
                hint = self.default_hint  # words, but no single action to offer
        super().__init__(f"{where}{code}: {message}", hint=hint, remedy=remedy)

    def _default_remedy(self, provider: str, model: str | None) -> Remedy | None:
        if self.default_action is None:
            return None
        return Remedy(self.default_action, {"provider": provider, "model": model}, self.default_hint)


class AuthenticationError(ProviderError):
    default_hint = "The credentials were rejected: update them with `ironspire providers set-key PROVIDER`."
    default_action = "set_key"

    def _default_remedy(self, provider: str, model: str | None) -> Remedy | None:
        return Remedy("set_key", {"provider": provider, "field": "api_key", "env": None}, self.default_hint)


class RateLimitError(ProviderError):
    default_hint = "The provider is throttling requests; wait and retry, or move the agent to another provider."
    default_action = "retry"

    def __init__(
        self,
        provider: str,
        message: str,
        *,
        retry_after: float | None = None,
        model: str | None = None,
        status: int | None = None,
        hint: str | None = None,
        raw: str | None = None,
    ) -> None:
        if retry_after is not None and not 0 <= retry_after <= 86_400:  # nan, inf, 1e12: a hint gone wrong
            retry_after = None if retry_after != retry_after or retry_after < 0 else 86_400.0
        self.retry_after = retry_after
        remedy = None
        if hint is None:
            text = self.default_hint
            if retry_after is not None:
                text = f"Retry after {retry_after:g} s, or move the agent to another provider."
            remedy = Remedy("retry", {"provider": provider, "model": model, "after": retry_after}, text)
        super().__init__(provider, message, model=model, status=status, hint=hint, raw=raw, remedy=remedy)


class ProviderUnavailable(ProviderError):
    default_hint = "The provider could not be reached or failed; check its status and your network, then retry."


class BadRequest(ProviderError):
    default_hint = "The provider rejected the request; the message above says which field."
    default_action: RemedyAction | None = None


class ContextWindowExceeded(BadRequest):
    default_hint = "Shorten the conversation, or switch the agent to a model with a larger context window."
    default_action = "shorten_history"

    def __init__(
        self,
        provider: str,
        message: str,
        *,
        used: int | None = None,
        limit: int | None = None,
        model: str | None = None,
        status: int | None = None,
        hint: str | None = None,
        raw: str | None = None,
    ) -> None:
        self.used, self.limit = used, limit
        super().__init__(provider, message, model=model, status=status, hint=hint, raw=raw)


class ModelNotFound(ProviderError):
    default_hint = "See `ironspire models list` for the models each provider offers."
    default_action = "choose_model"

    def __init__(
        self,
        provider: str,
        model: str,
        *,
        suggestions: Sequence[str] = (),
        status: int | None = None,
        raw: str | None = None,
    ) -> None:
        self.suggestions = list(suggestions)
        hint = self.default_hint
        if self.suggestions:
            hint = "Did you mean " + ", ".join(self.suggestions) + "? " + hint
        remedy = Remedy("choose_model", {"provider": provider, "model": model, "suggestions": list(self.suggestions)},
                        hint)
        super().__init__(provider, f"unknown model {model!r}", model=model, status=status, raw=raw, remedy=remedy)
