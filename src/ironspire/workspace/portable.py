"""Moving a project between machines: JSON export/import and a consistent SQLite backup.

None of these carries a credential: secrets live only in the keychain, the database never
holds them, and the export writes provider settings (non-secret by construction) plus, for
custom endpoints, only whether a key was set. On import the user sets keys again.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ironspire.catalog.providers import CustomEndpoint
from ironspire.errors import ConfigurationError
from ironspire.messages import Message
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


def export_json(ws: Workspace, path: Path, *, with_conversations: bool = False) -> Path:
    data = snapshot(ws, with_conversations=with_conversations)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def backup(ws: Workspace, path: Path) -> Path:
    """A consistent copy of the live database (the store's online backup), WAL content included."""
    return ws.store.backup(path)


def import_file(ws: Workspace, path: Path) -> dict[str, int]:
    """Restores a JSON export (merging into this project) or a backup (replacing its state)."""
    if not path.is_file():
        raise ConfigurationError(f"{path} does not exist.")
    if ws.store.is_backup(path):
        return _restore_backup(ws, path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigurationError(f"{path} is neither an Ironspire export nor a backup ({exc}).") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigurationError(f"{path} is not an Ironspire export (no \"format\": \"{FORMAT}\").")
    if int(data.get("version", 0)) > VERSION:
        raise ConfigurationError(f"{path} was written by a newer Ironspire (format {data['version']}).")
    return _restore_json(ws, data)


def _restore_json(ws: Workspace, data: dict[str, Any]) -> dict[str, int]:
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
        if "enabled" in entry:
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
        if "fallback" in record:
            agent.set_fallback(record["fallback"])
        if isinstance(record.get("budget"), dict):
            agent.set_budget(record["budget"]["usd"], record["budget"].get("period", "month"))
        counts["agents"] += 1
        if "messages" in record:
            messages = [Message.from_json(json.dumps(m)) for m in record["messages"]]
            ws.store.replace_history(agent.id, [(m.role, m.to_json()) for m in messages])
            agent._history = None
            counts["messages"] += len(messages)
    return counts


def _restore_backup(ws: Workspace, path: Path) -> dict[str, int]:
    ws.store.restore(path)
    for pid in ws.custom_endpoints():
        ws.registry.clear_runtime(pid.provider_id)
    ws._agents.clear()
    ws._custom.clear()
    ws._load()
    return ws.store.counts()
