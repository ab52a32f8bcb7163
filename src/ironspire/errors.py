"""One error hierarchy for the whole product.

Every error says which provider (and model, where known) it concerns and what the user can do
about it, because the person reading it is usually running a fleet of agents and needs to know
which one broke and how to fix it without reading a traceback. Messages never carry secrets:
provider text is passed through ``redact`` before it is stored on an error.

    IronspireError
     +-- ConfigurationError
     +-- CredentialsMissing
     +-- CapabilityError
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
from collections.abc import Iterable, Sequence

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


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Removes known and secret-looking values from text that will be shown or stored."""
    for s in sorted({*_known_secrets, *secrets}, key=len, reverse=True):
        if s and s in text:
            text = text.replace(s, mask(s))
    for pattern in _SECRET_PATTERNS:
        if pattern.groups == 2:
            text = pattern.sub(lambda m: m.group(1) + mask(m.group(2)), text)
        else:
            text = pattern.sub(lambda m: mask(m.group(1)), text)
    return text


class IronspireError(Exception):
    """Base of every error Ironspire raises on purpose."""

    hint: str = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = redact(message)
        if hint is not None:
            self.hint = hint
        super().__init__(self.message)

    def __str__(self) -> str:
        if not self.hint:
            return self.message
        # the message is often provider text without a full stop; keep two sentences apart
        sep = " " if self.message.rstrip().endswith((".", "!", "?", ":")) else ". "
        return f"{self.message.rstrip()}{sep}{self.hint}"


class ConfigurationError(IronspireError):
    """Settings are missing or contradict each other."""


class CredentialsMissing(IronspireError):
    def __init__(self, provider: str, field: str = "api_key", env: str | None = None) -> None:
        self.provider, self.field = provider, field
        how = f"run `ironspire providers set-key {provider}`"
        if field != "api_key":
            how = f"run `ironspire providers set-key {provider} --field {field}`"
        if env:
            how += f" or set {env}"
        super().__init__(f"{provider}: no {field} is configured.", hint=f"To fix: {how}.")


class CapabilityError(IronspireError):
    def __init__(self, provider: str, model: str, capability: str, detail: str = "") -> None:
        self.provider, self.model, self.capability = provider, model, capability
        super().__init__(
            f"{provider}/{model} does not support {capability}{': ' + detail if detail else ''}.",
            hint="Choose a model that has it (`ironspire models list --capability "
            f"{capability}`), or change the degradation policy in settings.",
        )


class ProviderError(IronspireError):
    """A provider refused or failed a request."""

    default_hint = "Check `ironspire providers check` and try again."

    def __init__(
        self,
        provider: str,
        message: str,
        *,
        model: str | None = None,
        status: int | None = None,
        hint: str | None = None,
        raw: str | None = None,
    ) -> None:
        self.provider, self.model, self.status = provider, model, status
        self.raw = redact(raw) if raw else None
        where = f"{provider}/{model}" if model else provider
        code = f" (HTTP {status})" if status else ""
        super().__init__(f"{where}{code}: {message}", hint=self.default_hint if hint is None else hint)


class AuthenticationError(ProviderError):
    default_hint = "The credentials were rejected: update them with `ironspire providers set-key PROVIDER`."


class RateLimitError(ProviderError):
    default_hint = "The provider is throttling requests; wait and retry, or move the agent to another provider."

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
        self.retry_after = retry_after
        if retry_after is not None and hint is None:
            hint = f"Retry after {retry_after:g} s, or move the agent to another provider."
        super().__init__(provider, message, model=model, status=status, hint=hint, raw=raw)


class ProviderUnavailable(ProviderError):
    default_hint = "The provider could not be reached or failed; check its status and your network, then retry."


class BadRequest(ProviderError):
    default_hint = "The provider rejected the request; the message above says which field."


class ContextWindowExceeded(BadRequest):
    default_hint = "Shorten the conversation, or switch the agent to a model with a larger context window."

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
        super().__init__(provider, f"unknown model {model!r}", model=model, status=status, hint=hint, raw=raw)
