"""Running the app: one workspace, one uvicorn server, one per-launch token in the printed URL."""

from __future__ import annotations

import asyncio
import sys
from typing import TextIO

from ironspire.web.security import Secrets, is_loopback

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8780

NOT_LOOPBACK = ("warning: listening on {host}, not on loopback: anyone who can reach this machine on port {port} "
                "can try to reach Ironspire, which holds your provider keys. Only the token in the URL below lets "
                "them in; keep it private, and prefer an SSH tunnel to --host.")


def url_for(host: str, port: int, token: str) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else (f"[{host}]" if ":" in host else host)
    return f"http://{shown}:{port}/?token={token}"


async def serve(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *, open_browser: bool = False,
                out: TextIO = sys.stdout) -> None:
    import uvicorn

    from ironspire.web.app import create_app
    from ironspire.workspace import Workspace

    secrets = Secrets()
    ws = Workspace.open()
    try:
        app = create_app(ws, host=host, port=port, secrets=secrets)
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                                server_header=False, date_header=False, timeout_graceful_shutdown=3)
        server = uvicorn.Server(config)
        if not is_loopback(host):
            print(NOT_LOOPBACK.format(host=host, port=port), file=sys.stderr, flush=True)
        url = url_for(host, port, secrets.token)

        async def announce() -> None:
            while not server.started:
                if server.should_exit:
                    return
                await asyncio.sleep(0.05)
            print(f"Ironspire is running at {url}", file=out, flush=True)
            print("(the token in this URL is new at every launch; Ctrl-C stops the server)", file=out, flush=True)
            if open_browser:
                import webbrowser

                webbrowser.open(url)

        announcer = asyncio.create_task(announce())
        try:
            await server.serve()
        finally:
            announcer.cancel()
    finally:
        await ws.aclose()
