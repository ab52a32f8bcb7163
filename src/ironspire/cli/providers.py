"""`ironspire providers ...`: the provider catalogue, grouped as in Settings > Providers."""

from __future__ import annotations

from typing import Any

import typer

from ironspire.cli.output import console, emit_json

app = typer.Typer(help="Configure and check providers.", no_args_is_help=True)


def provider_record(spec: Any) -> dict[str, Any]:
    return {
        "id": spec.id,
        "group": spec.group,
        "display_name": spec.display_name,
        "protocol": spec.protocol,
        "base_url": spec.base_url or None,
        "auth": [
            {"name": f.name, "label": f.label, "secret": f.secret, "required": f.required, "env": list(f.env)}
            for f in spec.auth
        ],
        "auth_note": spec.auth_note or None,
        "lists_models": spec.lists_models,
    }


@app.command("list")
def list_providers(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """List providers by group with the credentials each needs."""
    from ironspire.catalog.providers import BUILTIN_PROVIDERS, GROUP_TITLES, GROUPS

    specs = list(BUILTIN_PROVIDERS)
    if as_json:
        emit_json([provider_record(s) for s in specs])
        return
    from rich.table import Table

    for group in GROUPS:
        members = [s for s in specs if s.group == group]
        if not members:
            continue
        table = Table(title=GROUP_TITLES[group], title_justify="left")
        for col in ("id", "name", "protocol", "authentication", "base URL"):
            table.add_column(col)
        for s in members:
            auth = s.auth_note or " + ".join(f.label + ("" if f.required else " (optional)") for f in s.auth)
            table.add_row(s.id, s.display_name, s.protocol, auth, s.base_url or "-")
        console.print(table)
