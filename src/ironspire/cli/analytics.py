"""`ironspire analytics`: spend, tokens and turns per agent, provider or model over a period."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TextIO, cast

import typer

from ironspire.cli.output import console, emit_json, safe
from ironspire.views.formatting import money

if TYPE_CHECKING:
    from ironspire.analytics import GroupBy
    from ironspire.workspace import Workspace


def analytics(
    by: str = typer.Option("agent", "--by", help="agent | provider | model"),
    period: str = typer.Option(
        "all", "--period",
        help="session, 1h, 6h, 24h, 7d, 30d, 90d, all, or a range START..END of ISO dates/times in UTC "
        "(e.g. 2026-11-01..2026-11-30; a date END includes that day; either side may be left out).",
    ),
    agent: str | None = typer.Option(None, "--agent", help="Only this agent's requests."),
    provider: str | None = typer.Option(None, "--provider", help="Only requests to this provider."),
    csv_file: Annotated[
        Path | None,
        typer.Option("--csv", help="Write the summary as CSV (\"-\": to stdout; columns: the --by column, "
                     "turns, errors, "
                     "input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens, "
                     "total_tokens, cost_usd, api_cost_usd, avg_latency_s). With --raw, one row per request "
                     "(at, agent, provider, model, outcome, streamed, the five token columns, cost_usd, "
                     "api_cost_usd, latency_s, session, then turn, attempt and fallback_from: the turn the "
                     "request belongs to, its route's place in the turn's chain (0 = the agent's own route) "
                     "and the route a fallback stood in for)."),
    ] = None,
    raw: bool = typer.Option(False, "--raw", help="Raw turns instead of the summary (for --csv and --json)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Usage and cost KPIs with a breakdown (definitions: `ironspire.analytics`' docstring)."""
    from ironspire.cli._workspace import workspace
    from ironspire.errors import ConfigurationError

    if by not in ("agent", "provider", "model"):
        raise ConfigurationError(f"--by must be agent, provider or model, not {by!r}.")
    with workspace() as ws:
        stats = ws.analytics
        group = cast("GroupBy", by)
        kpis = stats.kpis(period, agent=agent, provider=provider)
        if not kpis["turns"] and not kpis["errors"]:
            _check_filters(ws, agent, provider)
        rows = (stats.turns(period, agent=agent, provider=provider) if raw
                else stats.summary(group, period, agent=agent, provider=provider))
        if csv_file is not None:
            out: Path | TextIO = sys.stdout if str(csv_file) == "-" else csv_file
            n = (stats.turns_csv(out, period, agent=agent, provider=provider) if raw
                 else stats.summary_csv(out, group, period, agent=agent, provider=provider))
            if out is sys.stdout:
                return  # stdout carries the CSV alone, so that it pipes into other tools
            if not as_json:
                console.print(f"Wrote {n} rows to {csv_file}.")
    if as_json:
        emit_json({"kpis": kpis, ("turns" if raw else "by_" + by): rows})
        return
    console.print(
        f"[bold]{kpis['period']}[/]  spend {money(kpis['total_spend_usd'])}"
        + (f" + {kpis['cost_unknown_turns']} turn(s) of unknown cost" if kpis["cost_unknown_turns"] else "")
        + f" (API-equivalent {money(kpis['api_equivalent_usd'])})  ·  agents {kpis['active_agents']}"
        f"  ·  tokens {kpis['total_tokens']:,}  ·  cache hit {kpis['cache_hit_rate']:.0%}"
        f"  ·  burn {money(kpis['burn_rate_usd_per_hour'])}/h  ·  turns {kpis['turns']}"
        + (f"  ·  errors {kpis['errors']}" if kpis["errors"] else "")
        + (f"  ·  {kpis['fallback_turns']} answered by a fallback" if kpis["fallback_turns"] else "")
        + (f"  ·  {kpis['turns_without_usage']} without usage (not counted)" if kpis["turns_without_usage"] else "")
    )
    if raw or not rows:
        return
    from rich import box
    from rich.table import Table

    # Light rules and short headers so the breakdown stays readable in an 80-column terminal;
    # the CSV and JSON outputs carry every column under its full name.
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, caption="Tokens: in / out / cache read / cache write. "
                  "Cost +n?: n turns of unknown cost, not in the sum.")
    for col in (by, "turns", "err", "in", "out", "cache r/w", "cost", "api equiv", "avg s"):
        if col == by:
            table.add_column(col, overflow="fold")
        else:
            table.add_column(col, justify="right", no_wrap=True, min_width=len(col))
    for r in rows:
        table.add_row(
            safe(r[by]), str(r["turns"]), str(r["errors"]), _count(r["input_tokens"]), _count(r["output_tokens"]),
            f"{_count(r['cache_read_tokens'])}/{_count(r['cache_write_tokens'])}",
            _cost(r["cost_usd"], r.get("cost_unknown")),
            "-" if r["api_cost_usd"] is None else _cost(r["api_cost_usd"], r.get("api_cost_unknown")),
            "-" if r["avg_latency_s"] is None else f"{r['avg_latency_s']:.2f}",
        )
    console.print(table)


def _check_filters(ws: Workspace, agent: str | None, provider: str | None) -> None:
    """A typo in --agent or --provider would otherwise read as "no usage": name the mistake.

    Only called when nothing matched, so the usage of a deleted agent or custom endpoint stays
    reachable by its old name."""
    if agent is not None:
        ws.agent(agent)  # raises with close names
    if provider is not None:
        ws.provider(provider)


def _cost(usd: float, unknown: int | None) -> str:
    """A sum that leaves out turns of unknown cost says how many, so "$0" never hides them."""
    return money(usd) + (f" +{unknown}?" if unknown else "")


def _count(n: int) -> str:
    """Token counts shortened the way people read them (12,345 -> 12.3K)."""
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f}M"
    if n >= 10_000:
        return f"{n / 1_000:.1f}K"
    return f"{n:,}"


def register(app: typer.Typer) -> None:
    app.command("analytics")(analytics)
