"""`ironspire agents create|list|show|set|reset|delete`: the fleet and each agent's route."""

from __future__ import annotations

import typer

from ironspire.cli.output import console, emit_json, safe

app = typer.Typer(help="Create and configure agents.", no_args_is_help=True)

JSON = typer.Option(False, "--json", help="Machine-readable output.")


@app.command("create")
def create(
    name: str = typer.Argument(...),
    provider: str | None = typer.Option(None, "--provider", "-p", help="Override the default provider."),
    model: str | None = typer.Option(None, "--model", "-m", help="Override the default model."),
    system: str | None = typer.Option(None, "--system", "-s", help="System prompt."),
) -> None:
    """Create an agent (it inherits the default route unless --provider/--model are given)."""
    from ironspire.cli._workspace import workspace

    with workspace() as ws:
        agent = ws.create_agent(name, provider, model, system)
        route = agent.route
    console.print(f"Created {safe(agent.name)} on {safe(route) if route else 'the default route (not set yet)'}.")


@app.command("list")
def list_agents(
    as_json: bool = JSON,
    check: bool = typer.Option(False, "--check", help="Probe the agents' providers first."),
) -> None:
    """List agents with their route; a warning column shows agents on an unhealthy provider."""
    from ironspire import views
    from ironspire.cli._workspace import workspace

    with workspace() as ws:
        if check:
            import asyncio

            used = sorted({route.provider for a in ws.agents() if (route := a.route) is not None})

            async def probe() -> None:
                try:
                    await ws.health.check(used)
                finally:
                    await ws.transport.close()

            asyncio.run(probe())
        rows = views.agents(ws)
    if as_json:
        emit_json([r.to_json() for r in rows])
        return
    if not rows:
        console.print("No agents yet. Create one with `ironspire agents create NAME`.")
        return
    from rich.table import Table

    table = Table()
    for col in ("agent", "provider", "model", "route", "warning"):
        table.add_column(col)
    for r in rows:
        table.add_row(safe(r.name), safe(r.provider or "-"), safe(r.model or "-"), r.route_kind, safe(r.warning or ""))
    console.print(table)


@app.command("show")
def show(name: str = typer.Argument(...), as_json: bool = JSON) -> None:
    """Show one agent: route, system prompt, history size."""
    from ironspire import views
    from ironspire.cli._workspace import workspace

    with workspace() as ws:
        view = views.agent(ws, name, detail=True)
    if as_json:
        emit_json(view.to_json())
        return
    route = f"{view.provider} / {view.model}" if view.provider else "none (no default set)"
    how = "inherits the default" if view.inherited else "own route"
    console.print(f"[bold]{safe(name)}[/]  {safe(route)}  ({how})")
    if view.warning:
        console.print(f"[yellow]warning:[/] {safe(view.warning)}")
    console.print(f"system: {safe(view.system or '-')}")
    console.print(f"history: {view.messages} messages" + (f", {view.unanswered} unanswered" if view.unanswered else ""))


@app.command("set")
def set_agent(
    name: str = typer.Argument(...),
    provider: str | None = typer.Option(None, "--provider", "-p"),
    model: str | None = typer.Option(None, "--model", "-m"),
    system: str | None = typer.Option(None, "--system", "-s", help="New system prompt (\"\" clears it)."),
    inherit: bool = typer.Option(False, "--inherit", help="Drop the override: use the workspace default."),
) -> None:
    """Change an agent's route or system prompt; its history is kept."""
    from ironspire.cli._workspace import workspace
    from ironspire.errors import ConfigurationError

    if inherit and (provider or model):
        raise ConfigurationError("--inherit drops the override; do not combine it with --provider/--model.")
    with workspace() as ws:
        agent = ws.agent(name)
        if inherit:
            agent.inherit()
        elif provider or model:
            agent.switch(provider or agent.own_provider, model if model else (None if provider else agent.own_model))
        if system is not None:
            agent.set_system(system)
        route = agent.route
    console.print(f"{safe(name)}: {safe(route) if route else 'no route (no default set)'}.")


YES = typer.Option(False, "--yes", "-y", help="Do it without asking.")


def confirm(question: str, yes: bool) -> None:
    """Asks before something that cannot be undone; a no (or no terminal answer) changes nothing."""
    if not yes and not typer.confirm(question, default=False):
        console.print("Nothing was changed.")
        raise typer.Exit(1)


@app.command("reset")
def reset(name: str = typer.Argument(...), yes: bool = YES) -> None:
    """Forget an agent's whole conversation (its route and system prompt stay)."""
    from ironspire.cli._workspace import workspace

    with workspace() as ws:
        agent = ws.agent(name)
        count = ws.store.counts_for(agent.id)
        confirm(f"Delete all {count} messages of {safe(agent.name)}?", yes)
        dropped = agent.reset()
    console.print(f"{safe(name)}: {dropped} messages deleted.")


@app.command("delete")
def delete(name: str = typer.Argument(...), yes: bool = YES) -> None:
    """Delete an agent and its conversation (its usage stays in the ledger under its name)."""
    from ironspire.cli._workspace import workspace

    with workspace() as ws:
        agent = ws.agent(name)
        confirm(f"Delete the agent {safe(agent.name)} and its {ws.store.counts_for(agent.id)} messages?", yes)
        ws.delete_agent(agent.name)
    console.print(f"Deleted {safe(name)}.")
