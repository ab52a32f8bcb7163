"""Every provider's pool shares one TLS context, whichever HTTP client is underneath: building one
reads the CA bundle, which would otherwise block the event loop once per provider (30 cards
checked at once in the web app)."""

from __future__ import annotations

import ssl
from importlib import import_module
from typing import Any

import pytest

from ironspire import http
from ironspire.catalog.models import dynamic_model
from ironspire.catalog.providers import builtin
from ironspire.transport import Transport
from ironspire.wire import Target


@pytest.mark.parametrize("client", ["aiohttp", "httpx2"])
async def test_one_tls_context_serves_every_pool(client: str, monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[Any] = []
    real = ssl.create_default_context

    def counting(*args: Any, **kwargs: Any) -> Any:
        context = real(*args, **kwargs)
        made.append(context)
        return context

    import_module(f"ironspire.http._{client}")  # what the library builds at its own import is not a pool's
    monkeypatch.setenv("IRONSPIRE_HTTP_CLIENT", client)
    monkeypatch.setattr(ssl, "create_default_context", counting)
    http.tls_context.cache_clear()
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
        http.tls_context.cache_clear()
