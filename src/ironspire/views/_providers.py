"""Provider cards from a Workspace: credentials (masked, with their origin), settings, health."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, cast

from ironspire.catalog.providers import GROUPS, AuthField, ProviderSpec
from ironspire.catalog.readiness import Readiness, readiness
from ironspire.errors import IronspireError, Remedy, enable_remedy, mask, set_key_remedy
from ironspire.views.records import AuthFieldView, HealthView, KeystoreView, ProviderView

if TYPE_CHECKING:
    from ironspire.credentials import CredentialStore
    from ironspire.workspace import Workspace


def credential_store(ws: Workspace) -> CredentialStore:
    """The workspace's credential store with its full interface (sources, store info)."""
    return cast("CredentialStore", ws.credentials)


def providers(ws: Workspace) -> list[ProviderView]:
    """Every provider in Settings > Providers order: the groups as the spec lists them, then
    custom endpoints."""
    views = [provider(ws, pid) for pid in ws.provider_ids()]
    order: dict[str, int] = {g: i for i, g in enumerate(GROUPS)}
    return sorted(views, key=lambda v: order.get(v.group, len(order)))  # stable: catalogue order within


def provider(ws: Workspace, pid: str) -> ProviderView:
    """One provider's card; an unknown id raises with suggestions."""
    spec = ws.provider(pid)
    settings = ws.provider_settings(spec.id)
    fields = tuple(_field(ws, spec, f, settings) for f in spec.auth)
    base_url = _base_url(ws, spec.id)
    ready = readiness(spec, present={f.name for f in fields if f.source != "missing"}, base_url=base_url,
                      enabled=ws.is_enabled(spec.id), settings={**_defaults(spec), **settings})
    return ProviderView(
        id=spec.id,
        group=spec.group,
        display_name=spec.display_name,
        protocol=spec.protocol,
        default_base_url=spec.base_url or None,
        auth=fields,
        auth_note=spec.auth_note or None,
        lists_models=spec.lists_models,
        enabled=ready.enabled,
        base_url_override=settings.get("base_url"),
        base_url=base_url,
        configured=ready.configured,
        missing=ready.missing,
        health=HealthView.of(ws.health.status(spec.id)),
        remedy=provider_remedy(spec, ready, fields),
    )


def keystore(ws: Workspace) -> KeystoreView:
    """Where `set-key` would store a secret now."""
    from ironspire.credentials import NO_KEYCHAIN_HINT

    info = credential_store(ws).info()
    return KeystoreView(info.kind, info.name, info.problem, NO_KEYCHAIN_HINT if info.kind == "none" else None)


def spec_record(spec: ProviderSpec) -> dict[str, Any]:
    """The catalogue facts of a provider alone (no credential is read)."""
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


def provider_readiness(ws: Workspace, pid: str) -> Readiness:
    """The one definition of "configured" (``catalog.readiness``) over what this workspace has."""
    view = provider(ws, pid)
    return Readiness(view.id, view.enabled, view.missing)


def configured_ids(ws: Workspace) -> list[str]:
    """Enabled providers the user has set up: configured (``catalog.readiness``) and chosen by the
    user (a stored key, an environment variable, a setting, an agent or default using it).

    A keyless provider (local Ollama, the Claude CLI) counts only once something points at it, so
    that `providers check` and the session monitor do not probe servers the user never asked for.
    """
    used = {route.provider for agent in ws.agents() if (route := agent.route) is not None}
    if ws.default is not None:
        used.add(ws.default[0])
    wanted = []
    for pid in ws.provider_ids():
        if not ws.is_enabled(pid):
            continue
        view = provider(ws, pid)
        if not view.configured:
            continue
        chosen = (pid in used or pid.startswith("custom-") or bool(ws.provider_settings(pid))
                  or any(f.source in ("keychain", "environment", "settings") for f in view.auth)
                  or (pid == "ollama" and bool(os.environ.get("OLLAMA_HOST", "").strip())))
        if chosen:
            wanted.append(pid)
    return wanted


def provider_remedy(spec: ProviderSpec, ready: Readiness, fields: tuple[AuthFieldView, ...]) -> Remedy | None:
    """The first thing to do to make the provider usable, or None when it is."""
    if ready.missing:
        name = ready.missing[0]
        f = next((f for f in fields if f.name == name), None)
        if f is not None and f.secret:
            return set_key_remedy(spec.id, name, f.env[0] if f.env else None)
        return Remedy("set_setting", {"provider": spec.id, "name": name},
                      f"Run `ironspire providers set {spec.id} {name} VALUE`.")
    if not ready.enabled:
        return enable_remedy(spec.id)
    return None


def _defaults(spec: ProviderSpec) -> dict[str, str]:
    return {f.name: f.default for f in spec.auth if f.default}


def _base_url(ws: Workspace, pid: str) -> str:
    """The URL a request would use, resolved as a turn resolves it."""
    try:
        return ws.target(pid).base_url
    except IronspireError:
        return ""


def _field(ws: Workspace, spec: ProviderSpec, f: AuthField, settings: dict[str, str]) -> AuthFieldView:
    """Where one credential or setting comes from, masked; secrets are never returned."""
    base: dict[str, Any] = {"name": f.name, "label": f.label, "secret": f.secret, "required": f.required,
                            "env": tuple(f.env)}
    if f.secret:
        store = credential_store(ws)
        value = store.get(spec.id, f.name)
        source = store.source(spec.id, f.name)
        return AuthFieldView(**base, source=source,
                             env_var=store.env_name(spec.id, f.name) if source == "environment" else None,
                             masked=mask(value) if value else None,
                             # "keychain" is where stored secrets come from; this says which store that is
                             store=store.info().kind if source == "keychain" else None)
    if settings.get(f.name):
        return AuthFieldView(**base, source="settings", value=settings[f.name])
    env = next((n for n in f.env if os.environ.get(n, "").strip()), None)
    if env:
        return AuthFieldView(**base, source="environment", env_var=env, value=os.environ[env].strip())
    if f.default:
        return AuthFieldView(**base, source="default", value=f.default)
    return AuthFieldView(**base, source="missing")
