"""Every provider's pool shares one TLS context: building one reads the CA bundle, which would
otherwise block the event loop once per provider (30 cards checked at once in the web app)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from ironspire.catalog.models import dynamic_model
from ironspire.catalog.providers import builtin
from ironspire.transport import Transport
from ironspire.wire import Target


async def test_one_tls_context_serves_every_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[Any] = []
    real = httpx.create_ssl_context

    def counting(*args: Any, **kwargs: Any) -> Any:
        context = real(*args, **kwargs)
        made.append(context)
        return context

    monkeypatch.setattr(httpx, "create_ssl_context", counting)
    transport = Transport()
    try:
        for pid in ("openai", "mistral", "groq", "deepseek", "xai"):
            spec = builtin(pid)
            transport.client(Target(spec, dynamic_model(pid, "m"), spec.base_url))
        assert len(made) == 1
        await transport.close("openai")
        spec = builtin("openai")
        transport.client(Target(spec, dynamic_model("openai", "m"), spec.base_url))  # a pool opened anew
        assert len(made) == 1
    finally:
        await transport.close()
