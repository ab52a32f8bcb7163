"""`ironspire models ...`: the registry as tables for people or JSON for scripts.

Most listings need nothing but the built-in data file, and opening the workspace (SQLite,
migrations, the keychain) costs most of a second, so it is opened only when the listing can
contain models that live there or are served at runtime: a provider that lists its models
(Ollama, Groq, Together, Fireworks), a custom endpoint, or the full listing (Ollama needs no
configuration, so it is always a candidate there).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import typer

from ironspire.cli.output import console, emit_json, inert

if TYPE_CHECKING:
    from rich.table import Table

    from ironspire.views import ModelView

app = typer.Typer(help="Browse the model registry.", no_args_is_help=True)

PRICE_NOTE = "Prices in USD per million tokens."
UNKNOWN_NOTE = " A ? marks a context window the provider did not report (a default)."


@app.command("list")
def list_models(
    provider: str | None = typer.Option(None, "--provider", "-p", help="Only this provider's models."),
    capability: str | None = typer.Option(
        None, "--capability", "-c", help="tools | vision | documents | reasoning | streaming"
    ),
    refresh: bool = typer.Option(
        False, "--refresh", help="Re-discover runtime models (Ollama, Groq, Together, Fireworks, custom endpoints)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """List models with context window, output limit, capabilities and prices."""
    from ironspire import views
    from ironspire.catalog.providers import builtin, is_builtin
    from ironspire.views._models import check_capability, needs_workspace, why_empty

    check_capability(capability)
    if provider is not None and not is_builtin(provider) and not provider.startswith("custom-"):
        builtin(provider)  # raises with suggestions
    if needs_workspace(provider):
        rows, has_any = _workspace_rows(provider, capability, refresh)
    else:
        rows = views.models(provider=provider, capability=capability)
        has_any = bool(rows) or bool(views.models(provider=provider))
    if as_json:
        emit_json([m.to_json() for m in rows])
        return
    for table in tables(rows, width=console.width):
        console.print(table)
        console.print()
    if rows:
        unknown = any(not m.context_known for m in rows)
        console.print(PRICE_NOTE + (UNKNOWN_NOTE if unknown else ""), style="dim")
    else:
        console.print("No models match." + why_empty(provider, has_any))


def _workspace_rows(provider: str | None, capability: str | None, refresh: bool) -> tuple[list[ModelView], bool]:
    """The workspace's models after asking, at once, every provider that lists its models and
    concerns this listing, each at the base URL and with the key a turn would use.

    The connect timeout is short so that nothing listening does not hold the listing up. When
    the user asked for one provider (``--provider P``) the reason it listed nothing goes to
    stderr; the full listing stays quiet about it (most people listing every model run no
    Ollama) and skips built-in providers that have no key, since they would only refuse.
    """
    from ironspire import views
    from ironspire.catalog.discovery import CLI_CONNECT_TIMEOUT, DiscoveryResult, run_sync
    from ironspire.cli._workspace import workspace
    from ironspire.views._models import listing_problem

    with workspace() as ws:
        if provider is not None:
            ws.provider(provider)  # an unknown custom endpoint fails here, listing the configured ones

        async def ask() -> dict[str, DiscoveryResult | None]:
            return await views.discover(ws, provider, refresh=refresh, connect_timeout=CLI_CONNECT_TIMEOUT)

        results = run_sync(ask)
        if provider is not None:
            problem = listing_problem(ws, provider, results[provider])
            if problem:
                from rich.console import Console

                Console(stderr=True, highlight=False).print(problem, markup=False)
        rows = views.models(ws, provider=provider, capability=capability)
        return rows, bool(rows) or bool(views.models(ws, provider=provider))


# --- the human table ---------------------------------------------------------------------------


def tables(models: list[ModelView], width: int = 80) -> list[Table]:
    """One table per provider, titled with it, in the richest layout that fits ``width``.

    The model id is never cut or wrapped: it is what people type. Layouts, widest first:
    capabilities and the deprecation note in columns of their own; the note on a line under the
    id; the capabilities there as well; and last each price pair on two lines. Every layout
    sizes its columns to their widest line, so no value is ever wrapped mid-way or cut.
    """
    import io

    from rich.console import Console
    from rich.measure import Measurement
    from rich.text import Text

    groups: dict[str, list[ModelView]] = {}
    for m in models:
        groups.setdefault(m.provider, []).append(m)
    measuring = Console(width=10_000, file=io.StringIO())  # the natural width, not clamped to ours
    out = []
    for pid, group in groups.items():
        title = Text(group[0].provider_name, style="bold")
        title.append(f"  {pid} · {len(group)} model{'s' if len(group) != 1 else ''}", style="dim")
        for layout in _LAYOUTS:
            table = _table(group, title, layout)  # the last one is used even if it does not fit
            if Measurement.get(measuring, measuring.options, table).maximum <= width:
                break
        out.append(table)
    return out


@dataclass(frozen=True, slots=True)
class _Layout:
    can_column: bool  # capabilities in a column, else on a line under the model id
    note_column: bool  # the deprecation note in a column, else on a line under the model id
    stacked: bool = False  # each price pair on two lines ("$in /" over "$out")


_LAYOUTS = (_Layout(True, True), _Layout(True, False), _Layout(False, False), _Layout(False, False, stacked=True))


def _table(group: list[ModelView], title: Any, layout: _Layout) -> Table:
    from rich import box
    from rich.cells import cell_len
    from rich.table import Table
    from rich.text import Text

    if not any(m.note for m in group):
        layout = replace(layout, note_column=False)  # no empty column

    # two spaces between columns (the box's blank divider and one collapsed pad), none at the edges
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
                  padding=(0, 1), collapse_padding=True)
    pair = "\n" if layout.stacked else " "
    headers = ["model", "context", "out", *(["can"] if layout.can_column else []),
               f"$ in /{pair}out", f"cache r /{pair}w", *(["note"] if layout.note_column else [])]
    cells: list[list[Text | str]] = []
    for m in group:
        can, note = _capabilities(m), m.note
        note_style = "yellow" if m.deprecation else "dim"
        first = Text(inert(m.id))
        if not layout.can_column:
            first.append("\n  " + can, style="dim")
        if note and not layout.note_column:
            first.append("\n  " + note, style=note_style)
        row: list[Text | str] = [first, m.context_label, m.max_output_label]
        row += [can] if layout.can_column else []
        row += list(m.price.labels(pair))
        row += [Text(note, style=note_style)] if layout.note_column else []
        cells.append(row)
    for i, header in enumerate(headers):
        # every column is as wide as its widest line: nothing is wrapped or cut by the table
        width = max(cell_len(line) for cell in [header, *(row[i] for row in cells)] for line in str(cell).splitlines())
        left = header in ("model", "can", "note")
        table.add_column(header, justify="left" if left else "right", no_wrap=True, min_width=width)
    for row in cells:
        table.add_row(*row)
    return table


def _capabilities(m: ModelView) -> str:
    return " ".join(m.chips) or "text only"


@app.command("price")
def price(
    provider: str = typer.Argument(..., help="Provider id (openai, bedrock, custom-...)."),
    model: str = typer.Argument(..., help="Model id as the provider names it."),
    input_price: float | None = typer.Option(None, "--input", help="USD per million uncached input tokens."),
    output_price: float | None = typer.Option(None, "--output", help="USD per million output tokens."),
    cache_read: float = typer.Option(0.0, "--cache-read", help="USD per million cache-read tokens."),
    cache_write: float = typer.Option(0.0, "--cache-write", help="USD per million cache-write tokens."),
    clear: bool = typer.Option(False, "--clear", help="Drop your price; the catalogue's applies again."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Show or set the price the ledger costs a model at (a negotiated rate, a custom endpoint).

    Without --input/--output it shows the price in use and where it comes from. A price you set
    applies from the next request on; past ledger rows keep the price they were costed at.
    """
    from ironspire import views
    from ironspire.cli._workspace import workspace

    with workspace() as ws:
        if clear:
            ws.clear_price(provider, model)
        elif input_price is not None or output_price is not None:
            ws.set_price(provider, model, input=input_price or 0.0, output=output_price or 0.0,
                         cache_read=cache_read, cache_write=cache_write)
        record = views.model_price(ws, provider, model)
    if as_json:
        emit_json(record.to_json())
        return
    console.print(record.describe())
