"""`ironspire models ...`: the registry as a table or JSON."""

from __future__ import annotations

import importlib
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import typer

from ironspire.cli.output import console, emit_json, tokens, usd

if TYPE_CHECKING:
    from ironspire.catalog.discovery import ListingEndpoint
    from ironspire.catalog.models import Registry

app = typer.Typer(help="Browse the model registry.", no_args_is_help=True)

CAPABILITY_CHOICES = ("tools", "vision", "reasoning", "streaming")


def _record(m: Any) -> dict[str, Any]:
    d = asdict(m)
    d["quirks"] = sorted(m.quirks)
    d["key"] = m.key
    return d


@app.command("list")
def list_models(
    provider: str | None = typer.Option(None, "--provider", "-p", help="Only this provider's models."),
    capability: str | None = typer.Option(None, "--capability", "-c", help="tools | vision | reasoning | streaming"),
    refresh: bool = typer.Option(
        False, "--refresh", help="Re-discover runtime models (Ollama, Groq, Together, Fireworks, custom endpoints)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """List models with context window, output limit, capabilities and prices."""
    from ironspire.catalog.providers import builtin, is_builtin
    from ironspire.errors import ConfigurationError

    if capability is not None and capability not in CAPABILITY_CHOICES:
        raise ConfigurationError(
            f"unknown capability {capability!r}.", hint="Use one of: " + ", ".join(CAPABILITY_CHOICES) + "."
        )
    if provider is not None and is_builtin(provider) is False and not provider.startswith("custom-"):
        builtin(provider)  # raises with suggestions
    registry, endpoints = _workspace_view()
    hook = _discovery_hook()
    if hook is not None:
        hook(registry, provider, refresh, endpoints)
    models = registry.list(provider=provider, capability=capability)  # type: ignore[arg-type]
    if as_json:
        emit_json([_record(m) for m in models])
        return
    from rich.table import Table

    table = Table(title=f"{len(models)} models", show_lines=False)
    for col in ("provider", "model", "context", "max out", "tools", "vision", "reason", "$ in", "$ out",
                "$ cache r/w", "note"):
        table.add_column(col, justify="right" if col.startswith(("$", "context", "max")) else "left")
    def mark(flag: bool) -> str:
        return "✓" if flag else "·"

    for m in models:
        note = f"retires {m.deprecation}" if m.deprecation else ("" if m.status.startswith("active") else m.status)
        table.add_row(
            m.provider, m.id, tokens(m.context_window), tokens(m.max_output_tokens), mark(m.tools), mark(m.vision),
            mark(m.reasoning), usd(m.price.input), usd(m.price.output),
            f"{usd(m.price.cache_read)}/{usd(m.price.cache_write)}", note,
        )
    console.print(table)
    if not models:
        console.print("No models match." + ("" if provider is None else f" ({provider} lists its models at runtime.)"))


def _workspace_view() -> tuple[Registry, list[ListingEndpoint]]:
    """The workspace's registry (custom endpoints' models included) and where each OpenAI-compatible
    provider that lists its models lives now: its base URL override and key apply, as for a turn."""
    from ironspire.catalog.discovery import ListingEndpoint
    from ironspire.cli._workspace import workspace

    with workspace() as ws:
        endpoints = []
        for pid in ws.provider_ids():
            spec = ws.provider(pid)
            if spec.protocol == "openai_chat" and spec.lists_models and ws.is_enabled(pid):
                target = ws.target(pid)
                endpoints.append(ListingEndpoint(spec, target.base_url, target.secrets.get("api_key")))
            elif spec.protocol == "ollama_chat":  # its base_url setting, else OLLAMA_HOST, else the default
                endpoints.append(ListingEndpoint(spec, ws.target(pid).base_url))
        return ws.registry, endpoints


def _discovery_hook() -> Any:
    """Runtime discovery, when the discovery module is present (filled by later work)."""
    try:
        discovery = importlib.import_module("ironspire.catalog.discovery")
    except ImportError:
        return None
    return getattr(discovery, "cli_hook", None)
