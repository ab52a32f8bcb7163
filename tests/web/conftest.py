"""The web app in-process: a real workspace (real credential store on an in-memory keyring, the
real health monitor and transport) behind the real middleware, driven through httpx's ASGI
transport with the app's lifespan running, as a browser would after opening the printed URL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ironspire.transport import RetryPolicy, Transport
from ironspire.web import create_app
from ironspire.web.security import Secrets
from ironspire.workspace import Workspace
from support.memory_keyring import MemoryKeyring, use_memory_keyring

BASE = "http://127.0.0.1:8780"


class Browser:
    """An httpx client holding the session cookie, with the page's CSRF token at hand."""

    def __init__(self, client: httpx.AsyncClient, secrets: Secrets, ws: Workspace, app: Any) -> None:
        self.client, self.secrets, self.ws, self.app = client, secrets, ws, app

    async def get(self, path: str, **kw: Any) -> httpx.Response:
        return await self.client.get(path, **kw)

    async def post(self, path: str, data: dict[str, Any] | None = None, *, json_answer: bool = False,
                   **kw: Any) -> httpx.Response:
        form = {"csrf_token": self.secrets.csrf, **(data or {})}
        headers = {**({"accept": "application/json"} if json_answer else {}), **kw.pop("headers", {})}
        return await self.client.post(path, data=form, headers=headers, **kw)

    async def api(self, path: str) -> Any:
        response = await self.client.get(path)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
def memory_keyring(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[MemoryKeyring]]:
    yield from use_memory_keyring(monkeypatch)


@pytest.fixture
async def web(memory_keyring: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Browser]:
    home = tmp_path / "ironspire-home"
    monkeypatch.setenv("IRONSPIRE_HOME", str(home))  # CLI runs in the same test see the same workspace
    ws = Workspace.open(home, transport=Transport(RetryPolicy(attempts=1)))
    secrets = Secrets()
    app = create_app(ws, secrets=secrets, check_on_start=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            signed_in = await client.get(f"/?token={secrets.token}")
            assert signed_in.status_code == 303
            yield Browser(client, secrets, ws, app)
    await ws.aclose()
