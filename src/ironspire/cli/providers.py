"""`ironspire providers ...`: the catalogue grouped as in Settings > Providers, credentials, health.

Secrets are read from a hidden prompt, or from stdin when it is not a terminal, never from argv
(argv is visible to every process on the machine and lands in shell history). Values are only
ever printed masked.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import TYPE_CHECKING

import typer

from ironspire.cli._workspace import workspace
from ironspire.cli.output import console, emit_json, safe

if TYPE_CHECKING:
    from ironspire.credentials import CredentialStore
    from ironspire.health import HealthStatus
    from ironspire.views import HealthView, KeystoreView, ProviderView
    from ironspire.workspace import Workspace

app = typer.Typer(help="Configure and check providers.", no_args_is_help=True)

#: the view's dot colours as Rich styles
DOT_STYLE = {"green": "green", "red": "red", "yellow": "yellow", "grey": "grey50"}


def _open() -> Workspace:
    from ironspire.workspace import Workspace

    return Workspace.open()


def _store(ws: Workspace) -> CredentialStore:
    from ironspire.views._providers import credential_store

    return credential_store(ws)


_SOURCE_STYLE = {"keychain": "green", "environment": "cyan", "settings": "green", "default": "grey50",
                 "missing": "red"}


def _print_keystore(view: KeystoreView) -> None:
    if view.kind == "none":
        console.print(f"[yellow]No keychain:[/] {safe(view.problem)}\n{safe(view.hint)}")
    else:
        console.print(f"Credentials are stored in the {view.name}.")


def _auth_summary(view: ProviderView) -> str:
    if not view.auth:
        return view.auth_note or "none"
    parts = []
    for f in view.auth:
        style = "grey50" if f.optional_and_unset else _SOURCE_STYLE[f.source]
        shown = f.shown
        parts.append(f"{f.label}: [{style}]{f.where}[/]" + (f" ({shown})" if shown else ""))
    return "\n".join(parts)


@app.command("list")
def list_providers(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """List providers by group with where each credential comes from (keychain / environment / missing)."""
    from ironspire import views
    from ironspire.catalog.providers import GROUP_TITLES, GROUPS

    with workspace() as ws:
        cards = views.providers(ws)
        if as_json:
            emit_json([c.to_json() for c in cards])
            return
        from rich.table import Table

        _print_keystore(views.keystore(ws))
        for group in GROUPS:
            members = [c for c in cards if c.group == group]
            if not members:
                continue
            table = Table(title=GROUP_TITLES[group], title_justify="left")
            for col in ("id", "name", "protocol", "credentials", "base URL", "enabled"):
                table.add_column(col)
            for c in members:
                url = c.base_url_override or c.default_base_url or "-"
                table.add_row(safe(c.id), safe(c.display_name), c.protocol, _auth_summary(c), safe(url),
                              "yes" if c.enabled else "[grey50]no[/]")
            console.print(table)


def _dot(health: HealthView | HealthStatus) -> str:
    from ironspire.health import HealthStatus
    from ironspire.views import HealthView

    if isinstance(health, HealthStatus):
        health = HealthView.of(health)
    latency = f" {health.shown_latency_ms:.0f} ms" if health.shown_latency_ms is not None else ""
    line = f"[{DOT_STYLE[health.dot]}]●[/] {safe(f'{health.provider:<18}')} {safe(health.label)}{latency}"
    if health.until is not None:
        line += f" until {health.until.astimezone().strftime('%H:%M:%S')}"
    return line


def _print_status(health: HealthView) -> None:
    console.print(_dot(health))
    if health.detail:
        console.print("    " + safe(health.detail), style="grey62")


async def _run_checks(ws: Workspace, ids: list[str], limit: float) -> list[HealthView]:
    from ironspire import views

    try:
        return await views.check(ws, ids, limit=limit)
    finally:
        await ws.aclose()


_IDS = typer.Argument(None, metavar="[ID]...", help="Providers to check (default: the configured, enabled ones).")


@app.command("check")
def check(
    ids: list[str] | None = _IDS,
    timeout: float = typer.Option(5.0, "--timeout", help="Seconds each check may take."),
    all_: bool = typer.Option(False, "--all", help="Check every provider, configured or not."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Check providers now, in parallel: reachable, invalid key, rate-limited, unreachable...

    Exits with status 1 when any provider checked is not reachable (so scripts can rely on it).
    """
    ws = _open()
    try:
        # unknown ids fail here, with suggestions
        from ironspire import views

        if ids:
            wanted = [ws.provider(pid).id for pid in ids]
        else:
            wanted = ws.provider_ids() if all_ else views.configured_ids(ws)
    except Exception:
        ws.close()
        raise
    if not wanted:
        ws.close()
        if as_json:
            emit_json([])
        else:
            console.print("No provider is configured yet: set a key with `ironspire providers set-key ID`, "
                          "or name providers to check.")
        return
    results = asyncio.run(_run_checks(ws, wanted, timeout))
    if as_json:
        emit_json([r.to_json() for r in results])
    else:
        for status in results:
            _print_status(status)
    if not all(r.healthy for r in results):
        raise typer.Exit(1)


def read_secret(prompt: str) -> str:
    """From a hidden prompt on a terminal, else all of stdin (for pipes and scripts)."""
    from ironspire.errors import ConfigurationError

    if sys.stdin is not None and sys.stdin.isatty():
        value = typer.prompt(prompt, hide_input=True)
    else:
        value = sys.stdin.read() if sys.stdin is not None else ""
    value = str(value).strip()
    if not value:
        raise ConfigurationError("no value was given (empty input); nothing was stored.")
    return value


def _ensure_store(ws: Workspace) -> None:
    """Where no keychain works, say so and offer the encrypted file; never pick plaintext.

    The passphrase variable exists only for the encrypted file, so setting it is the user's
    consent: the file is used (and said so). Otherwise a terminal is asked, and a script is told
    how to choose.
    """
    from ironspire.credentials import NO_KEYCHAIN_HINT, PASSPHRASE_ENV
    from ironspire.errors import ConfigurationError

    store = _store(ws)
    info = store.info()
    if info.kind != "none":
        return
    passphrase = os.environ.get(PASSPHRASE_ENV, "")
    interactive = sys.stdin is not None and sys.stdin.isatty()
    if not passphrase.strip() and not interactive:
        raise ConfigurationError(f"no keychain to store credentials in: {info.problem}", hint=NO_KEYCHAIN_HINT)
    console.print(f"[yellow]No keychain:[/] {safe(info.problem)}")
    if passphrase.strip():
        path = store.use_encrypted_file(passphrase)
        console.print(f"{PASSPHRASE_ENV} is set: using the encrypted credential file {path}.")
        return
    if not typer.confirm("Keep Ironspire's credentials in a passphrase-protected encrypted file instead?"):
        raise ConfigurationError("nothing was stored.", hint=NO_KEYCHAIN_HINT)
    passphrase = typer.prompt("New passphrase", hide_input=True, confirmation_prompt=True)
    path = store.use_encrypted_file(passphrase)
    console.print(f"Using the encrypted file {path} (set {PASSPHRASE_ENV} to unlock it without a prompt).")


@app.command("set-key")
def set_key(
    provider: str = typer.Argument(..., help="Provider id, e.g. openai or custom-mybox."),
    field: str = typer.Option("api_key", "--field", "-f", help="Credential field (see `providers list`)."),
) -> None:
    """Store a secret in the keychain; it is read from a hidden prompt, or from stdin when piped."""
    from ironspire.errors import mask

    with workspace() as ws:
        spec = ws.provider(provider)
        store = _store(ws)
        label = store.require_secret_field(spec.id, field).label  # refuse bad fields before asking
        _ensure_store(ws)
        value = read_secret(f"{spec.display_name} {label}")
        store.set(spec.id, field, value)
        ws.health.reset(spec.id)  # what was known was about the previous key
        console.print(f"Stored {spec.id} {field} ({mask(value)}) in the {store.info().name}.")
        env = store.env_name(spec.id, field)
        if env:
            console.print(f"[grey50]{env} is also set; the stored value wins.[/]")


@app.command("remove-key")
def remove_key(
    provider: str = typer.Argument(..., help="Provider id."),
    field: str = typer.Option("api_key", "--field", "-f", help="Credential field."),
) -> None:
    """Remove a stored secret (environment variables are not touched)."""
    with workspace() as ws:
        spec = ws.provider(provider)
        store = _store(ws)
        removed = store.remove(spec.id, field)
        ws.health.reset(spec.id)
        console.print(f"Removed {spec.id} {field}." if removed else f"No stored {field} for {spec.id}.")
        env = store.env_name(spec.id, field)
        if env:
            console.print(f"{spec.id} still gets its {field} from the environment variable {env}; unset it too.")


@app.command("set")
def set_setting(
    provider: str = typer.Argument(..., help="Provider id."),
    name: str = typer.Argument(..., help="Setting: base_url, timeout, region, deployment, api_version..."),
    value: str = typer.Argument(..., help='New value ("" removes the override).'),
) -> None:
    """Set a non-secret provider setting, such as a base URL override (proxies, gateways, local servers)."""
    with workspace() as ws:
        spec = ws.provider(provider)
        ws.set_provider_setting(spec.id, name, value or None)
        ws.health.reset(spec.id)  # a new URL, region or deployment: the old state says nothing about it
        console.print(f"{spec.id} {safe(name)} = {safe(value)}" if value
                      else f"{spec.id} {safe(name)} reset to its default.")


@app.command("add-custom")
def add_custom(
    name: str = typer.Option(..., "--name", help="Name; the provider id becomes custom-<name>."),
    base_url: str = typer.Option(..., "--base-url", help="OpenAI-compatible base URL, usually ending in /v1."),
    model_id: str = typer.Option(..., "--model-id", help="The model id the endpoint serves."),
    display_name: str | None = typer.Option(None, "--display-name", help="Model name shown in lists."),
    context_window: int = typer.Option(32_768, "--context-window", min=1, help="Context window in tokens."),
    tools: bool = typer.Option(True, "--tools/--no-tools", help="The model supports tool calls."),
    vision: bool = typer.Option(False, "--vision/--no-vision", help="The model accepts images."),
    with_key: bool = typer.Option(False, "--with-key", help="Ask for an API key (prompt, or stdin when piped)."),
    api: str = typer.Option("chat", "--api", help="chat (Chat Completions, the default) or responses (the "
                            "Responses API: Open Responses servers such as vLLM, LM Studio, Ollama)."),
    timeout: float = typer.Option(5.0, "--timeout", help="Seconds the health check may take."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Add an OpenAI-compatible endpoint, then check it right away."""
    from ironspire.catalog.providers import CustomEndpoint
    from ironspire.errors import ConfigurationError
    from ironspire.workspace.routing import OPENAI_APIS

    if api not in OPENAI_APIS:  # refused before anything is stored
        raise ConfigurationError(f"--api must be one of {', '.join(OPENAI_APIS)}, not {api!r}.")
    endpoint = CustomEndpoint(name, base_url, model_id, display_name, context_window, tools=tools, vision=vision)
    ws = _open()
    try:
        existed = endpoint.provider_id in ws.provider_ids()
        api_key = None
        if with_key:
            _ensure_store(ws)
            api_key = read_secret(f"API key for {name}")
        spec = ws.add_custom_endpoint(endpoint, api_key)
        ws.set_provider_setting(spec.id, "api", "" if api == "chat" else api)
    except Exception:
        ws.close()
        raise
    (status,) = asyncio.run(_run_checks(ws, [spec.id], timeout))
    if as_json:
        from ironspire.views import spec_record

        emit_json({"provider": spec_record(spec), "health": status.to_json()})
        return
    what = "Updated" if existed else "Added"
    console.print(f"{what} {safe(spec.id)} ({safe(spec.base_url)}, model {safe(model_id)}).")
    _print_status(status)


async def _toggle(ws: Workspace, pid: str, on: bool) -> None:
    try:
        await (ws.enable(pid) if on else ws.disable(pid))
    finally:
        await ws.aclose()


@app.command("enable")
def enable(provider: str = typer.Argument(..., help="Provider id.")) -> None:
    """Enable a provider (its pool, health and discovered models start afresh)."""
    asyncio.run(_toggle(_open(), provider, True))
    console.print(f"{provider} enabled.")


@app.command("disable")
def disable(provider: str = typer.Argument(..., help="Provider id.")) -> None:
    """Disable a provider: no agent is routed to it and it is not checked."""
    asyncio.run(_toggle(_open(), provider, False))
    console.print(f"{provider} disabled.")


@app.command("health-interval")
def health_interval(
    seconds: float | None = typer.Argument(None, help="New interval in seconds (omit to show it)."),
) -> None:
    """Show or set how often `ironspire chat` re-checks the configured providers in the background."""
    with workspace() as ws:
        if seconds is not None:
            ws.set_setting("health_interval", seconds)
        console.print(f"health_interval = {float(ws.setting('health_interval')):g} s")


@app.command("keystore")
def keystore(
    encrypted_file: bool = typer.Option(False, "--encrypted-file", help="Use a passphrase-protected file."),
    keychain: bool = typer.Option(False, "--keychain", help="Go back to the OS keychain."),
) -> None:
    """Show where credentials are kept, or switch between the OS keychain and an encrypted file."""
    from ironspire.credentials import PASSPHRASE_ENV
    from ironspire.errors import ConfigurationError

    with workspace() as ws:
        store = _store(ws)
        if encrypted_file and keychain:
            raise ConfigurationError("choose one of --encrypted-file and --keychain.")
        if encrypted_file:
            passphrase = os.environ.get(PASSPHRASE_ENV)
            if not passphrase:
                if not (sys.stdin is not None and sys.stdin.isatty()):
                    raise ConfigurationError("no passphrase given.", hint=f"Set {PASSPHRASE_ENV} or run in a terminal.")
                passphrase = typer.prompt("Passphrase", hide_input=True, confirmation_prompt=True)
            store.use_encrypted_file(passphrase)
        elif keychain:
            store.use_keychain()
        from ironspire import views

        _print_keystore(views.keystore(ws))
