"""`ironspire serve`: the local web app (Settings > Providers, agents, chat with the Session HUD)."""

from __future__ import annotations

import contextlib

import typer


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (anything but loopback warns)."),
    port: int = typer.Option(8780, "--port", min=1, max=65535, help="Port to listen on."),
    open_browser: bool = typer.Option(False, "--open", help="Open the page in the default browser."),
) -> None:
    """Start the local web app; the URL it prints carries this launch's access token."""
    import asyncio

    from ironspire.web.serve import serve as run

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how the server is meant to stop
        asyncio.run(run(host, port, open_browser=open_browser))


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
