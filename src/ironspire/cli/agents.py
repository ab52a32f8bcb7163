"""`ironspire agents create|list|show|set|reset|delete`: the fleet and each agent's route."""

from __future__ import annotations

import typer

from ironspire.cli.output import console, emit_json, safe
from ironspire.errors import usd

app = typer.Typer(help="Create and configure agents.", no_args_is_help=True)

JSON = typer.Option(False, "--json", help="Machine-readable output.")
EFFORT_HELP = "How deeply the agent reasons: low, medium or high (default high); used where the model reasons."


@app.command("create")
def create(
    name: str = typer.Argument(...),
    provider: str | None = typer.Option(None, "--provider", "-p", help="Override the default provider."),
    model: str | None = typer.Option(None, "--model", "-m", help="Override the default model."),
    system: str | None = typer.Option(None, "--system", "-s", help="System prompt."),
    effort: str = typer.Option("high", "--effort", "-e", help=EFFORT_HELP),
) -> None:
    """Create an agent (it inherits the default route unless --provider/--model are given)."""
    from ironspire.cli._workspace import workspace

    with workspace() as ws:
        agent = ws.create_agent(name, provider, model, system, effort=effort)
        route = agent.route
    console.print(f"Created {safe(agent.name)} on {safe(route) if route else 'the default route (not set yet)'}"
                  f" (effort {agent.effort}).")


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
    console.print(f"effort: {view.effort}")
    chain = view.fallback
    console.print("fallback: " + (safe(", ".join(chain.routes)) + (" (workspace default)" if chain.inherited else "")
                                  if chain else "-"))
    for budget in view.budgets:
        which = "own" if budget.scope == "agent" else "workspace"
        unknown = f" + {budget.unknown_turns} turn(s) of unknown cost" if budget.unknown_turns else ""
        mark = {"ok": "", "warning": "  [yellow](80% reached)[/]", "exceeded": "  [red](used up)[/]"}[budget.level]
        console.print(f"budget ({which}): {usd(budget.spent)}{unknown} of {usd(budget.usd)} per {budget.period}{mark}")
    console.print(f"system: {safe(view.system or '-')}")
    console.print(f"history: {view.messages} messages" + (f", {view.unanswered} unanswered" if view.unanswered else ""))


@app.command("set")
def set_agent(
    name: str = typer.Argument(...),
    provider: str | None = typer.Option(None, "--provider", "-p"),
    model: str | None = typer.Option(None, "--model", "-m"),
    system: str | None = typer.Option(None, "--system", "-s", help="New system prompt (\"\" clears it)."),
    inherit: bool = typer.Option(False, "--inherit", help="Drop the override: use the workspace default."),
    effort: str | None = typer.Option(None, "--effort", "-e", help=EFFORT_HELP),
    fallback: str | None = typer.Option(
        None, "--fallback", help="Fallback routes P/M,P/M tried in order when the agent's own fails; "
        "'none' for none, 'default' for the workspace's chain."),
    budget: str | None = typer.Option(None, "--budget", help="Spending budget in USD ('none' removes it)."),
    period: str = typer.Option("month", "--period", help="The budget's period: day or month."),
) -> None:
    """Change an agent's route, system prompt, fallbacks or budget; its history is kept."""
    from ironspire.cli._workspace import workspace
    from ironspire.errors import ConfigurationError
    from ironspire.workspace.effort import check_effort

    if inherit and (provider or model):
        raise ConfigurationError("--inherit drops the override; do not combine it with --provider/--model.")
    if effort is not None:
        check_effort(effort)  # refused before anything changes
    with workspace() as ws:
        agent = ws.agent(name)
        if inherit:
            agent.inherit()
        elif provider or model:
            agent.switch(provider or agent.own_provider, model if model else (None if provider else agent.own_model))
        if system is not None:
            agent.set_system(system)
        if effort is not None:
            agent.set_effort(effort)
        if fallback is not None:
            agent.set_fallback(None if fallback == "default" else [] if fallback == "none" else fallback)
        if budget is not None:
            agent.set_budget(None if budget == "none" else _amount(budget), period)
        route = agent.route
        chain = ", ".join(str(r) for r in agent.fallback_chain)
        own = agent.budget
    console.print(f"{safe(name)}: {safe(route) if route else 'no route (no default set)'}"
                  + (f", then {safe(chain)}" if chain else "")
                  + (f"; budget {usd(own.usd)} per {own.period}" if own else "") + f", effort {agent.effort}.")


def _amount(text: str) -> float:
    from ironspire.errors import ConfigurationError

    try:
        return float(text.lstrip("$"))
    except ValueError:
        raise ConfigurationError(f"--budget takes an amount of USD or 'none', not {text!r}.") from None


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
