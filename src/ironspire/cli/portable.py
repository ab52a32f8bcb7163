"""`ironspire export|backup|import`: moving a project; no credential ever goes into these files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ironspire.cli.output import console


def export(
    file: Annotated[Path, typer.Argument()],
    with_conversations: bool = typer.Option(False, "--with-conversations", help="Include every agent's history."),
) -> None:
    """Write settings, provider settings, custom endpoints and agents as JSON (no credentials)."""
    from ironspire.cli._workspace import workspace

    with workspace() as ws:
        ws.export(file, with_conversations=with_conversations)
    console.print(f"Exported to {file}. Credentials are not included; set them again after importing.")


def backup(file: Annotated[Path, typer.Argument()]) -> None:
    """Write a consistent copy of the whole state database (no credentials: they are in the keychain)."""
    from ironspire.cli._workspace import workspace

    with workspace() as ws:
        ws.backup(file)
    console.print(f"Backed up to {file}.")


def import_(
    file: Annotated[Path, typer.Argument()],
    yes: bool = typer.Option(False, "--yes", "-y", help="Do it without asking (after showing what changes)."),
    replace: bool = typer.Option(False, "--replace", help="Replace existing agents' history with the file's."),
) -> None:
    """Restore a JSON export (merged into this project) or a backup (replaces the state).

    Shows first what it changes (base URLs that keys will be sent to, histories replaced) and
    asks; nothing changes without a yes."""
    from ironspire.cli._workspace import workspace

    with workspace() as ws:
        plan = ws.plan_import(file, replace=replace)
        for line in plan.lines():
            console.print(line, markup=False, soft_wrap=True)
        if not yes and not typer.confirm("Go ahead?", default=False):
            console.print("Nothing was changed.")
            raise typer.Exit(1)
        counts = ws.import_(file, replace=replace)
        kept = ws.last_auto_backup
    console.print("Imported " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items()) + ".")
    if kept is not None:
        console.print(f"The replaced state is kept in {kept}.", markup=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("export")(export)
    app.command("backup")(backup)
    app.command("import")(import_)
