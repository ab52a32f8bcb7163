"""`ironspire default show|set`: the route every agent without its own override uses."""

from __future__ import annotations

import typer

from ironspire.cli.output import console, emit_json, safe
from ironspire.errors import usd as dollars

app = typer.Typer(help="Show or set the workspace's default route, fallback chain and budget.",
                  no_args_is_help=True)


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


@app.command("fallback")
def fallback(routes: str | None = typer.Argument(
        None, help="P/M,P/M tried in order when an agent's own route fails ('none' clears it)."),
        on: str | None = typer.Option(
            None, "--on", help="Failures that move a turn on, comma-separated: unreachable, 5xx, rate_limited, "
            "quota, invalid_key (default: all but invalid_key)."),
        cooldown: float | None = typer.Option(
            None, "--cooldown", help="Seconds an unreachable provider is passed over."),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Show or set the fallback chain of every agent that has none of its own, and when any chain is used."""
    from ironspire.cli._workspace import workspace

    with workspace() as ws:
        if routes is not None:
            ws.set_default_fallback(None if routes == "none" else routes)
        if on is not None:
            ws.set_setting("fallback_on", [k.strip() for k in on.split(",") if k.strip()])
        if cooldown is not None:
            ws.set_setting("fallback_cooldown", cooldown)
        chain = [str(r) for r in ws.default_fallback]
        triggers, pause = list(ws.setting("fallback_on")), float(ws.setting("fallback_cooldown"))
    if as_json:
        emit_json({"routes": chain, "on": triggers, "cooldown": pause})
    else:
        console.print("Default fallback: " + (", ".join(chain) if chain else "none")
                      + f"; used on {', '.join(triggers) or 'no failure'}; unreachable providers rest {pause:g} s.")


@app.command("budget")
def budget(usd: str | None = typer.Argument(None, help="USD per period ('none' removes the budget)."),
           period: str = typer.Option("month", "--period", help="day or month."),
           as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Show or set the workspace's spending budget (at 100% every turn is refused until it resets)."""
    from ironspire import views
    from ironspire.cli._workspace import workspace
    from ironspire.errors import ConfigurationError

    with workspace() as ws:
        if usd is not None:
            try:
                amount = None if usd == "none" else float(usd.lstrip("$"))
            except ValueError:
                raise ConfigurationError(f"a budget is an amount of USD or 'none', not {usd!r}.") from None
            ws.set_budget(amount, period)
        view = views.workspace_budget(ws)
    if as_json:
        emit_json(None if view is None else view.to_json())
    elif view is None:
        console.print("No workspace budget. Set one with `ironspire default budget USD --period day|month`.")
    else:
        unknown = f" + {view.unknown_turns} turn(s) of unknown cost" if view.unknown_turns else ""
        console.print(f"Workspace budget: {dollars(view.spent)}{unknown} of {dollars(view.usd)} per {view.period} "
                      f"({view.fraction:.0%}, {view.level}).")
