"""Typed errors as records: the words a terminal prints and the remedy a browser turns into a button."""

from __future__ import annotations

from typing import Any

from ironspire.errors import (
    ContextWindowExceeded,
    IronspireError,
    ModelNotFound,
    ProviderError,
    RateLimitError,
)
from ironspire.views.records import ErrorView


def error(exc: IronspireError) -> ErrorView:
    extra: dict[str, Any] = {}
    provider = getattr(exc, "provider", None)
    model = getattr(exc, "model", None)
    if isinstance(exc, ProviderError):
        extra["status"] = exc.status
    if isinstance(exc, RateLimitError):
        extra["retry_after"] = exc.retry_after
    if isinstance(exc, ContextWindowExceeded):
        extra.update(used=exc.used, limit=exc.limit)
    if isinstance(exc, ModelNotFound):
        extra["suggestions"] = list(exc.suggestions)
    return ErrorView(type(exc).__name__, exc.message, exc.hint,
                     provider if isinstance(provider, str) else None,
                     model if isinstance(model, str) else None, exc.remedy, extra)
