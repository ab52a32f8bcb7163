"""`ironspire default show|set`: the route every agent without its own override uses."""

from __future__ import annotations

import typer

from ironspire.cli.output import console, emit_json, safe

app = typer.Typer(help="Show or set the workspace's default provider and model.", no_args_is_help=True)


@app.command("show")
def show(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Show the default route."""
    from ironspire import views
    from ironspire.cli._workspace import workspace

    with workspace() as ws:
        default = views.default_route(ws)
    if as_json:
        emit_json(default.to_json())
    elif default.provider is None:
        console.print("No default is set. Run `ironspire default set PROVIDER MODEL`.")
    else:
        console.print(f"{safe(default.provider)} / {safe(default.model)}")


@app.command("set")
def set_default(provider: str = typer.Argument(...), model: str = typer.Argument(...)) -> None:
    """Set the default route; inheriting agents use it from their next request on."""
    from ironspire.cli._workspace import workspace

    with workspace() as ws:
        ws.set_default(provider, model)
        moved = [a.name for a in ws.agents() if a.inherits]
    console.print(f"Default set to {safe(provider)} / {safe(model)}"
                  + (f" (used by: {safe(', '.join(moved))})" if moved else "") + ".")
