"""Moving a project between machines: JSON export/import and a consistent SQLite backup.

None of these carries a credential: secrets live only in the keychain, the database never
holds them, and the export writes provider settings (non-secret by construction) plus, for
custom endpoints, only whether a key was set. On import the user sets keys again.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ironspire.catalog.providers import CustomEndpoint
from ironspire.errors import ConfigurationError
from ironspire.messages import Message
from ironspire.paths import private_dir, write_private
from ironspire.workspace.effort import DEFAULT_EFFORT

if TYPE_CHECKING:
    from ironspire.workspace.workspace import Workspace

FORMAT = "ironspire-export"
VERSION = 1


def snapshot(ws: Workspace, *, with_conversations: bool = False) -> dict[str, Any]:
    stored = ws.store.load_config()
    providers: dict[str, dict[str, Any]] = {}
    for pid, enabled in stored.enabled.items():
        providers.setdefault(pid, {"settings": {}})["enabled"] = enabled
    for pid, values in stored.provider_settings.items():
        providers.setdefault(pid, {"settings": {}})["settings"].update(values)
    agents = []
    for agent in ws.agents():
        record: dict[str, Any] = {"name": agent.name, "system": agent.system, "provider": agent.own_provider,
                                  "model": agent.own_model, "effort": agent.effort}
        own = agent.fallback
        if own is not None:
            record["fallback"] = [str(r) for r in own]
        if agent.budget is not None:
            record["budget"] = agent.budget.to_stored()
        if with_conversations:
            record["messages"] = [json.loads(m.to_json()) for m in agent.history]
        agents.append(record)
    return {
        "format": FORMAT,
        "version": VERSION,
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "settings": ws.settings(),
        "providers": providers,
        "custom_endpoints": [
            {"name": e.name, "base_url": e.base_url, "model_id": e.model_id, "display_name": e.display_name,
             "context_window": e.context_window, "max_output_tokens": e.max_output_tokens, "tools": e.tools,
             "vision": e.vision, "has_key": e.has_key}
            for e in ws.custom_endpoints()
        ],
        "agents": agents,
    }


def in_use(ws: Workspace, path: Path) -> bool:
    """True for a file the workspace lives in or writes while it runs (database, its journal and
    locks, health state): an export or a backup written there would destroy it."""
    if ws.store.uses(path):
        return True
    try:
        target = path.resolve()
    except OSError:
        return False
    live = target.with_name(target.name + "-wal")
    return target == (ws.home / "health.json").resolve() or live.exists()


def _refuse_in_use(ws: Workspace, path: Path, what: str) -> None:
    if path.is_dir():
        raise ConfigurationError(f"{path} is a directory; give the file to write the {what} to.")
    if in_use(ws, path):
        raise ConfigurationError(f"{path} is a file the workspace is using; the {what} was not written.",
                                 hint="Give a path outside the workspace's files, e.g. ~/ironspire-" + what + ".")


def export_json(ws: Workspace, path: Path, *, with_conversations: bool = False) -> Path:
    _refuse_in_use(ws, path, "export")
    data = snapshot(ws, with_conversations=with_conversations)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_private(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    return path


def backup(ws: Workspace, path: Path) -> Path:
    """A consistent copy of the live database (the store's online backup), WAL content included."""
    _refuse_in_use(ws, path, "backup")
    return ws.store.backup(path)


def auto_backup_dir(ws: Workspace) -> Path:
    return ws.home / "backups"


@dataclass
class ImportPlan:
    """What an import would change, shown before anything is changed (``lines`` for a terminal).

    ``base_urls``: (provider, old URL or None, new URL) for every base URL the file sets or
    changes: the next turn sends that provider's stored key there. ``replaced``: agents whose
    history the import replaces (a backup replaces every agent's; an export only with
    ``replace``); ``kept``: agents whose own history is kept although the file has one for them.
    """

    kind: str  # "backup" or "export"
    path: Path
    current: dict[str, int] = field(default_factory=dict)
    incoming: dict[str, int] = field(default_factory=dict)
    base_urls: list[tuple[str, str | None, str]] = field(default_factory=list)
    new_agents: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        if self.kind == "backup":
            out = [f"Restoring {self.path} replaces the whole workspace: {self.current.get('agents', 0)} agents and "
                   f"{self.current.get('messages', 0)} messages now, {self.incoming.get('agents', 0)} agents and "
                   f"{self.incoming.get('messages', 0)} messages in the backup.",
                   "The current state is kept first as an automatic backup."]
        else:
            out = [f"Importing {self.path} merges into this workspace."]
            if self.new_agents:
                out.append("New agents: " + ", ".join(self.new_agents) + ".")
            if self.replaced:
                out.append("History REPLACED for: " + ", ".join(self.replaced) + ".")
            if self.kept:
                out.append("History kept (the file's is ignored; --replace to take it) for: "
                           + ", ".join(self.kept) + ".")
        for pid, old, new in self.base_urls:
            change = f"{old} -> {new}" if old else new
            out.append(f"WARNING: {pid} base URL {change}: its stored API key will be sent to {new}.")
        return out


def _read_export(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigurationError(f"{path} is neither an Ironspire export nor a backup ({exc}).") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigurationError(f"{path} is not an Ironspire export (no \"format\": \"{FORMAT}\").")
    version = data.get("version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise ConfigurationError(f"{path} is not a valid Ironspire export: version must be a whole number.")
    if version > VERSION:
        raise ConfigurationError(f"{path} was written by a newer Ironspire (format {data['version']}).")
    from ironspire.workspace import export_schema

    return export_schema.parse(data, str(path)).model_dump()


def plan_import(ws: Workspace, path: Path, *, replace: bool = False) -> ImportPlan:
    """What ``import_file`` would do with ``path``; changes nothing."""
    if not path.is_file():
        raise ConfigurationError(f"{path} does not exist.")
    if ws.store.is_backup(path):
        incoming = ws.store.check_backup(path)
        return ImportPlan("backup", path, ws.store.counts(), incoming)
    data = _read_export(path)
    plan = ImportPlan("export", path)
    for raw in data.get("custom_endpoints", []):
        endpoint = CustomEndpoint(**{k: raw[k] for k in raw if k in CustomEndpoint.__dataclass_fields__})
        old = ws._custom.get(endpoint.provider_id)
        new_url = endpoint.base_url.rstrip("/")
        if old is None or old.base_url != new_url:
            plan.base_urls.append((endpoint.provider_id, old.base_url if old else None, new_url))
    for pid, entry in data.get("providers", {}).items():
        new_url = entry.get("settings", {}).get("base_url")
        old_url = ws.provider_settings(pid).get("base_url")
        if new_url and new_url != old_url:
            plan.base_urls.append((pid, old_url, new_url))
    for record in data.get("agents", []):
        existing = ws.store.agent_record(record["name"])
        if existing is None:
            plan.new_agents.append(record["name"])
        elif record.get("messages") is not None and ws.store.turns.check(existing.id)[1] is not None:
            (plan.replaced if replace else plan.kept).append(record["name"])
    return plan


def import_file(ws: Workspace, path: Path, *, replace: bool = False) -> dict[str, int]:
    """Restores a JSON export (merging into this project) or a backup (replacing its state).

    An export never replaces an agent's existing history unless ``replace``; a backup is checked
    to be an Ironspire backup, and the state it replaces is kept as an automatic backup first."""
    plan = plan_import(ws, path, replace=replace)
    if plan.kind == "backup":
        return _restore_backup(ws, path)
    data = _read_export(path)
    # all or nothing: a step refused half-way (a route naming an unknown model) puts back the state before
    before = private_dir(auto_backup_dir(ws)) / f".before-import-{time.time_ns()}.db"
    ws.store.backup(before)
    try:
        return _restore_json(ws, data, replace=replace)
    except BaseException:
        ws.store.restore(before)
        _reload(ws)
        raise
    finally:
        before.unlink(missing_ok=True)


def _restore_json(ws: Workspace, data: dict[str, Any], *, replace: bool = False) -> dict[str, int]:
    counts = {"custom_endpoints": 0, "provider_settings": 0, "agents": 0, "messages": 0}
    for raw in data.get("custom_endpoints", []):
        endpoint = CustomEndpoint(**{k: raw[k] for k in raw if k in CustomEndpoint.__dataclass_fields__})
        ws.add_custom_endpoint(endpoint)
        counts["custom_endpoints"] += 1
    for pid, entry in data.get("providers", {}).items():
        try:
            spec = ws.provider(pid)
        except ConfigurationError:
            continue
        secret = {f.name for f in spec.auth if f.secret}
        for name, value in entry.get("settings", {}).items():
            if name in secret:
                continue  # never import something that claims to be a secret
            ws.set_provider_setting(pid, name, value)
            counts["provider_settings"] += 1
        if entry.get("enabled") is not None:
            ws._set_enabled(pid, bool(entry["enabled"]))
    settings = data.get("settings", {})
    for key, value in settings.items():
        if key in ("default_provider", "default_model"):
            continue
        try:
            ws.set_setting(key, value)
        except ConfigurationError:
            continue
    if settings.get("default_provider") and settings.get("default_model"):
        ws.set_default(settings["default_provider"], settings["default_model"])
    for record in data.get("agents", []):
        name = record["name"]
        try:
            agent = ws.agent(name)
        except ConfigurationError:
            agent = ws.create_agent(name, record.get("provider"), record.get("model"), record.get("system"),
                                    effort=record.get("effort") or DEFAULT_EFFORT)
        else:
            agent.switch(record.get("provider"), record.get("model"))
            agent.set_system(record.get("system"))
            agent.set_effort(record.get("effort") or DEFAULT_EFFORT)
        if record.get("fallback") is not None:
            agent.set_fallback(record["fallback"])
        if isinstance(record.get("budget"), dict):
            agent.set_budget(record["budget"]["usd"], record["budget"].get("period", "month"))
        counts["agents"] += 1
        if record.get("messages") is not None and (replace or ws.store.turns.check(agent.id)[1] is None):
            messages = [Message.from_json(json.dumps(m)) for m in record["messages"]]
            ws.store.replace_history(agent.id, [(m.role, m.to_json()) for m in messages])
            agent._history = None
            counts["messages"] += len(messages)
    return counts


def _restore_backup(ws: Workspace, path: Path) -> dict[str, int]:
    folder = auto_backup_dir(ws)
    private_dir(folder)
    kept = folder / time.strftime("before-restore-%Y%m%dT%H%M%SZ", time.gmtime())
    n = 0
    while (candidate := kept.with_name(f"{kept.name}{'-' + str(n) if n else ''}.db")).exists():
        n += 1
    ws.last_auto_backup = ws.store.backup(candidate)
    ws.store.restore(path)
    _reload(ws)
    return ws.store.counts()


def _reload(ws: Workspace) -> None:
    """After the database was replaced under it: every agent object whose id the new state does
    not give its name is retired (a turn on it is refused, never written into another agent's
    history), custom endpoints that changed forget their discovered models."""
    ws._load()
