"""The project: default route, provider settings, custom endpoints and a fleet of agents.

A Workspace owns the pieces that must be shared by every agent in a process (one transport
with a pool per provider, one model registry, one credential store, one health monitor) and
the SQLite store that outlives the process. Everything an agent needs at request time is asked
of the workspace then, never copied into the agent, so settings changes apply immediately.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import delete, select

from ironspire.catalog.models import ModelSpec, Registry, dynamic_model
from ironspire.catalog.providers import BUILTIN_PROVIDERS, CustomEndpoint, ProviderSpec, builtin, is_builtin
from ironspire.errors import ConfigurationError
from ironspire.protocols.base import Backend, Secrets, Target
from ironspire.workspace import routing
from ironspire.workspace.store import (
    DB_NAME,
    AgentRow,
    CustomEndpointRow,
    ProviderRow,
    ProviderSettingRow,
    SettingRow,
    make_engine,
    make_sessions,
)

if TYPE_CHECKING:
    from ironspire.analytics import Analytics
    from ironspire.catalog.discovery import DiscoveryResult
    from ironspire.transport import Transport
    from ironspire.workspace.agent import Agent


class CredentialsLike(Protocol):
    def get(self, pid: str, field: str = "api_key") -> str | None: ...
    def set(self, pid: str, field: str, value: str) -> None: ...
    def remove(self, pid: str, field: str) -> bool: ...
    def secrets_for(self, spec: ProviderSpec) -> Secrets: ...


class HealthLike(Protocol):
    async def check(self, ids: Iterable[str] | None = None) -> dict[str, Any]: ...
    def status(self, pid: str) -> Any: ...
    def observe(self, pid: str, error: Any, latency: float) -> None: ...
    def reset(self, pid: str) -> None: ...


HealthFactory = Callable[..., HealthLike]

#: workspace settings and their defaults; the degradation policies are documented in preflight
DEFAULT_SETTINGS: dict[str, Any] = {
    "default_provider": None,
    "default_model": None,
    "degrade_images": "error",
    "degrade_tools": "error",
    "foreign_reasoning": "drop",
    "max_tokens": None,
    "health_interval": 60.0,  # seconds between the monitor's re-checks during a chat session
}
SETTING_CHOICES: dict[str, tuple[str, ...]] = {
    "degrade_images": ("error", "omit"),
    "degrade_tools": ("error", "flatten"),
    "foreign_reasoning": ("drop", "text"),
}


class Workspace:
    """Open with ``Workspace.open()``; close with ``await ws.aclose()`` or ``async with``.

    ``ws.health`` is the provider health monitor (``await ws.health.check()`` probes now;
    live traffic updates it), ``ws.analytics`` the usage ledger (``ws.analytics.kpis()``).
    Several workspaces may be open in one process: each has its own pools and database.
    """

    def __init__(
        self,
        home: Path,
        *,
        credentials: CredentialsLike,
        health: HealthFactory,
        transport: Transport,
        registry: Registry,
    ) -> None:
        from ironspire.workspace import migrations

        self.home = home
        self.path = home / DB_NAME
        self.engine = make_engine(self.path)
        migrations.upgrade(self.engine)
        self._sessions = make_sessions(self.engine)
        self.session_id = uuid.uuid4().hex
        self.session_started = time.time()
        self.transport = transport
        self.registry = registry
        self.credentials = credentials
        self._settings: dict[str, Any] = dict(DEFAULT_SETTINGS)
        # Provider state read on every turn (Agent.target, Workspace.target, the health
        # observer), held in memory like ``_settings``: filled by _load, kept current by every
        # method below that writes these tables, so a turn runs no query before its request.
        self._disabled: set[str] = set()
        self._provider_settings: dict[str, dict[str, str]] = {}
        self._custom: dict[str, CustomEndpoint] = {}
        self._agents: dict[str, Agent] = {}
        self._backends: dict[str, Backend] = {}
        self._load()
        self.health = health(self.transport, self.target, provider_ids=self.provider_ids, is_enabled=self.is_enabled)
        self.transport.observers.append(self.health.observe)
        persist = getattr(self.health, "persist", None)
        if persist is not None:  # the last known health outlives the command (warnings in `agents list`)
            persist(home / "health.json")

    @classmethod
    def open(
        cls,
        home: str | Path | None = None,
        *,
        credentials: CredentialsLike | None = None,
        health: HealthFactory | None = None,
        transport: Transport | None = None,
        registry: Registry | None = None,
    ) -> Workspace:
        """Opens (creating and migrating as needed) the workspace stored under ``home``.

        The keyword arguments replace the shared components, for embedding and for tests.
        """
        if home is None:
            from ironspire.paths import home as default_home

            base = default_home()
        else:
            base = Path(home).expanduser()
            base.mkdir(parents=True, exist_ok=True)
        if credentials is None:
            credentials = _component("ironspire.credentials", "CredentialStore")()
        if health is None:
            health = _component("ironspire.health", "HealthMonitor")
        if transport is None:
            from ironspire.transport import Transport

            transport = Transport()
        return cls(base, credentials=credentials, health=health, transport=transport,
                   registry=registry or Registry())

    def _load(self) -> None:
        """Reads the stored state into memory; called again after a backup is restored."""
        self._disabled = set()
        self._provider_settings = {}
        with self._sessions() as s:
            for row in s.scalars(select(SettingRow)):
                self._settings[row.key] = json.loads(row.value)
            for prow in s.scalars(select(ProviderRow)):
                if not prow.enabled:
                    self._disabled.add(prow.id)
            for ps in s.scalars(select(ProviderSettingRow)):
                self._provider_settings.setdefault(ps.provider, {})[ps.name] = ps.value
            for ep in s.scalars(select(CustomEndpointRow)):
                endpoint = CustomEndpoint(
                    ep.name, ep.base_url, ep.model_id, ep.display_name, ep.context_window,
                    ep.max_output_tokens, ep.tools, ep.vision, ep.has_key,
                )
                self._custom[ep.provider_id] = endpoint
                self._register_custom_model(endpoint)

    async def aclose(self) -> None:
        """Stops the periodic health checks, closes the HTTP pools and releases the database.

        Safe to call twice. Inside an event loop prefer this (or ``async with``) to ``close``:
        a running health monitor would otherwise keep probing and reopen a pool.
        """
        stop = getattr(self.health, "stop", None)
        if stop is not None:
            await stop()
        await self.transport.close()
        self.engine.dispose()

    def close(self) -> None:
        """Releases the database; use ``aclose`` inside an event loop to close HTTP pools too."""
        self.engine.dispose()

    async def __aenter__(self) -> Workspace:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- workspace settings ----------------------------------------------------------------

    def setting(self, key: str) -> Any:
        if key not in DEFAULT_SETTINGS:
            raise ConfigurationError(
                f"unknown workspace setting {key!r}.", hint="Known: " + ", ".join(DEFAULT_SETTINGS)
            )
        return self._settings.get(key)

    def settings(self) -> dict[str, Any]:
        return dict(self._settings)

    def set_setting(self, key: str, value: Any) -> None:
        self.setting(key)
        choices = SETTING_CHOICES.get(key)
        if choices and value not in choices:
            raise ConfigurationError(f"{key} must be one of {', '.join(choices)}, not {value!r}.")
        if key == "max_tokens" and value is not None:
            value = int(value)
        if key == "health_interval":
            try:
                value = float(value)
                if not value > 0:
                    raise ValueError
            except (TypeError, ValueError):
                raise ConfigurationError(f"health_interval must be a positive number of seconds, not {value!r}.") \
                    from None
        with self._sessions.begin() as s:
            s.merge(SettingRow(key=key, value=json.dumps(value)))
        self._settings[key] = value

    @property
    def default(self) -> tuple[str, str] | None:
        provider, model = self._settings.get("default_provider"), self._settings.get("default_model")
        return (provider, model) if provider and model else None

    def set_default(self, provider: str, model: str) -> None:
        """Sets the route every inheriting agent uses from its next request on."""
        self.provider(provider)
        self.registry.get(provider, model)
        with self._sessions.begin() as s:
            s.merge(SettingRow(key="default_provider", value=json.dumps(provider)))
            s.merge(SettingRow(key="default_model", value=json.dumps(model)))
        self._settings["default_provider"], self._settings["default_model"] = provider, model

    # --- providers -------------------------------------------------------------------------

    def provider(self, pid: str) -> ProviderSpec:
        custom = self._custom.get(pid)
        if custom is not None:
            return custom.spec()
        if pid.startswith("custom-"):
            known = ", ".join(self._custom) or "none"
            raise ConfigurationError(
                f"unknown custom endpoint {pid!r} (configured: {known}).",
                hint="Add it with `ironspire providers add-custom`.",
            )
        return builtin(pid)

    def provider_ids(self) -> list[str]:
        return [p.id for p in BUILTIN_PROVIDERS] + sorted(self._custom)

    def is_enabled(self, pid: str) -> bool:
        return pid not in self._disabled

    async def enable(self, pid: str) -> None:
        self.provider(pid)
        self._set_enabled(pid, True)
        await self._forget(pid)
        custom = self._custom.get(pid)
        if custom is not None:
            self._register_custom_model(custom)

    async def disable(self, pid: str) -> None:
        """Stops routing to a provider and forgets its live state (pool, health, discovered models)."""
        self.provider(pid)
        self._set_enabled(pid, False)
        await self._forget(pid)

    async def _forget(self, pid: str) -> None:
        """Closes the pool and drops cached health and discovered models (registry and cache)."""
        from ironspire.catalog.discovery import CACHE

        await self.transport.close(pid)
        self.health.reset(pid)
        self.registry.clear_runtime(pid)
        CACHE.forget(pid)

    def _set_enabled(self, pid: str, enabled: bool) -> None:
        with self._sessions.begin() as s:
            s.merge(ProviderRow(id=pid, enabled=enabled))
        if enabled:
            self._disabled.discard(pid)
        else:
            self._disabled.add(pid)

    def provider_settings(self, pid: str) -> dict[str, str]:
        return dict(self._provider_settings.get(pid, {}))

    def set_provider_setting(self, pid: str, name: str, value: str | None) -> None:
        """Stores a non-secret provider setting (None or "" removes it); secrets are refused."""
        spec = self.provider(pid)
        for f in spec.auth:
            if f.name == name and f.secret:
                raise ConfigurationError(
                    f"{pid}: {name} is a secret and is not stored in settings.",
                    hint=f"Use `ironspire providers set-key {pid}"
                    + ("" if name == "api_key" else f" --field {name}") + "` (it reads the value from a prompt).",
                )
        allowed = routing.allowed_settings(spec)
        if name not in allowed:
            raise ConfigurationError(f"{pid} has no setting {name!r}.", hint="Settings: " + ", ".join(allowed) + ".")
        if name == "timeout" and value:
            try:
                if float(value) <= 0:
                    raise ValueError
            except ValueError:
                raise ConfigurationError(f"{pid}: timeout must be a positive number of seconds.") from None
        if name == "base_url" and value and not value.startswith(("http://", "https://")):
            raise ConfigurationError(f"{pid}: base_url must start with http:// or https://, not {value!r}.")
        with self._sessions.begin() as s:
            if value:
                s.merge(ProviderSettingRow(provider=pid, name=name, value=value))
            else:
                s.execute(delete(ProviderSettingRow).where(
                    ProviderSettingRow.provider == pid, ProviderSettingRow.name == name))
        if value:
            self._provider_settings.setdefault(pid, {})[name] = value
        else:
            self._provider_settings.get(pid, {}).pop(name, None)

    async def discover_models(
        self, pid: str, *, refresh: bool = False, connect_timeout: float | None = None
    ) -> DiscoveryResult | None:
        """Asks a provider that lists its models at runtime (``ProviderSpec.lists_models``: Ollama,
        Groq, Together, Fireworks, custom endpoints) what it serves now, at the base URL and with
        the key a turn would use, and installs the answer in this registry.

        Answers are cached briefly (per URL and key) and nothing here raises for a provider that
        is down, refuses or cannot be read: the result carries the message instead, and a turn
        then fails at its request with the transport's own error. None for a provider that does
        not list its models or is disabled. An unknown provider id is a ConfigurationError.
        """
        spec = self.provider(pid)
        if not spec.lists_models or not self.is_enabled(pid):
            return None
        from ironspire.catalog.discovery import DEFAULT_CONNECT_TIMEOUT, DiscoveryResult, install
        from ironspire.protocols.listing import discover

        url = spec.base_url
        try:
            url = routing.base_url(spec, routing.setting_values(spec, self.provider_settings(pid)))
            key = self.credentials.get(pid, "api_key") if any(f.name == "api_key" for f in spec.auth) else None
            result = await discover(spec, url, key, transport=self.transport, refresh=refresh,
                                    connect_timeout=connect_timeout or DEFAULT_CONNECT_TIMEOUT)
        except Exception as exc:  # a locked keychain, a malformed URL: listing is best effort
            from ironspire.errors import redact

            return DiscoveryResult(pid, url, error=redact(f"{pid}: could not list models ({exc})"))
        if result.ok:
            install(self.registry, result)
        return result

    def target(self, pid: str, model_id: str | None = None) -> Target:
        """Everything one request to ``pid`` needs, read now from settings, environment and keychain."""
        spec = self.provider(pid)
        model = self._model(pid, model_id)
        settings = routing.setting_values(spec, self.provider_settings(pid))
        url = routing.base_url(spec, settings)
        timeout = float(settings.get("timeout") or 120.0)
        return Target(spec, model, url, self.credentials.secrets_for(spec), settings, timeout=timeout,
                      connect_timeout=min(10.0, timeout))

    def _model(self, pid: str, model_id: str | None) -> ModelSpec:
        if model_id is None:
            default = self.default
            if default is not None and default[0] == pid:
                model_id = default[1]
        if model_id is not None:
            return self.registry.get(pid, model_id)
        listed = self.registry.list(provider=pid)
        return listed[0] if listed else dynamic_model(pid, "default")

    # --- custom endpoints ------------------------------------------------------------------

    def add_custom_endpoint(self, endpoint: CustomEndpoint, api_key: str | None = None) -> ProviderSpec:
        """Adds (or replaces) a custom endpoint. Its key goes to the keychain, never the database."""
        if not endpoint.base_url.startswith(("http://", "https://")):
            raise ConfigurationError(
                f"custom endpoint base URL must start with http:// or https://: {endpoint.base_url!r}"
            )
        pid = endpoint.provider_id
        if is_builtin(pid):
            raise ConfigurationError(f"{pid!r} is a built-in provider id.")
        has_key = endpoint.has_key or bool(api_key)
        if api_key:
            self.credentials.set(pid, "api_key", api_key)
        with self._sessions.begin() as s:
            s.merge(CustomEndpointRow(
                provider_id=pid, name=endpoint.name, base_url=endpoint.base_url.rstrip("/"),
                model_id=endpoint.model_id, display_name=endpoint.display_name,
                context_window=endpoint.context_window, max_output_tokens=endpoint.max_output_tokens,
                tools=endpoint.tools, vision=endpoint.vision, has_key=has_key,
            ))
        from dataclasses import replace

        stored = replace(endpoint, base_url=endpoint.base_url.rstrip("/"), has_key=has_key)
        self._custom[pid] = stored
        self.registry.clear_runtime(pid)
        self._register_custom_model(stored)
        return stored.spec()

    def _register_custom_model(self, endpoint: CustomEndpoint) -> None:
        self.registry.register(ModelSpec(
            provider=endpoint.provider_id, id=endpoint.model_id,
            display_name=endpoint.display_name or endpoint.model_id,
            context_window=endpoint.context_window, max_output_tokens=endpoint.max_output_tokens,
            tools=endpoint.tools, vision=endpoint.vision, source="configured",
        ))

    def remove_custom_endpoint(self, pid: str) -> None:
        if pid not in self._custom:
            self.provider(pid)  # raises the "unknown" error with the configured list
            raise ConfigurationError(f"{pid} is a built-in provider and cannot be removed.")
        users = [a.name for a in self._agent_rows() if a.provider == pid]
        if self.default is not None and self.default[0] == pid:
            users.append("(workspace default)")
        if users:
            raise ConfigurationError(
                f"{pid} is still used by: {', '.join(users)}.",
                hint="Move them to another provider first (`ironspire agents set NAME --provider P --model M`).",
            )
        with self._sessions.begin() as s:
            s.execute(delete(CustomEndpointRow).where(CustomEndpointRow.provider_id == pid))
            s.execute(delete(ProviderSettingRow).where(ProviderSettingRow.provider == pid))
            s.execute(delete(ProviderRow).where(ProviderRow.id == pid))
        del self._custom[pid]
        self._provider_settings.pop(pid, None)
        self._disabled.discard(pid)
        self.credentials.remove(pid, "api_key")
        self.registry.clear_runtime(pid)
        self.health.reset(pid)

    def custom_endpoints(self) -> list[CustomEndpoint]:
        return [self._custom[k] for k in sorted(self._custom)]

    # --- agents ----------------------------------------------------------------------------

    def _agent_rows(self) -> list[AgentRow]:
        with self._sessions() as s:
            return list(s.scalars(select(AgentRow).order_by(AgentRow.id)))

    def check_route(self, provider: str | None, model: str | None) -> None:
        """Validates an agent override now, so a typo fails at configuration, not at first use."""
        if provider is not None:
            self.provider(provider)
            if model is not None:
                self.registry.get(provider, model)
        elif model is not None:
            default = self.default
            if default is None:
                raise ConfigurationError(
                    "a model without a provider needs a workspace default provider.",
                    hint="Give --provider too, or run `ironspire default set PROVIDER MODEL`.",
                )
            self.registry.get(default[0], model)

    def create_agent(
        self, name: str, provider: str | None = None, model: str | None = None, system: str | None = None
    ) -> Agent:
        """Creates and stores an agent. Without ``provider``/``model`` it inherits the workspace
        default at each request (so ``set_default`` moves it); a route given here is checked now,
        so a typo fails at creation rather than at the first turn."""
        from ironspire.workspace.agent import Agent

        name = name.strip()
        if not name or len(name) > 100:
            raise ConfigurationError("an agent needs a name of 1 to 100 characters.")
        self.check_route(provider, model)
        with self._sessions.begin() as s:
            if s.scalar(select(AgentRow).where(AgentRow.name == name)) is not None:
                raise ConfigurationError(f"an agent named {name!r} already exists.")
            row = AgentRow(name=name, system=system, provider=provider, model=model, created_at=time.time())
            s.add(row)
            s.flush()
            agent_id = row.id
        agent = Agent(self, agent_id, name, system, provider, model, history=[])
        self._agents[name] = agent
        return agent

    def agent(self, name: str) -> Agent:
        """The stored agent of that name, the same object on every call (its turns are serialised
        through it); a ConfigurationError suggesting close names if there is none."""
        cached = self._agents.get(name)
        if cached is not None:
            return cached
        from ironspire.workspace.agent import Agent

        with self._sessions() as s:
            row = s.scalar(select(AgentRow).where(AgentRow.name == name))
        if row is None:
            import difflib

            names = [a.name for a in self._agent_rows()]
            close = difflib.get_close_matches(name, names, n=3)
            hint = (f"Did you mean {', '.join(close)}? " if close else "")
            hint += "Create it with `ironspire agents create NAME`."
            raise ConfigurationError(f"no agent named {name!r}.", hint=hint)
        agent = Agent(self, row.id, row.name, row.system, row.provider, row.model, history=None)
        self._agents[name] = agent
        return agent

    def agents(self) -> list[Agent]:
        return [self.agent(row.name) for row in self._agent_rows()]

    def running_agents(self, *, agent: str | None = None, provider: str | None = None) -> int:
        """Agents of this workspace with a turn in flight now (optionally one agent or provider)."""
        return sum(
            1 for a in self._agents.values()
            if a.running_on is not None and agent in (None, a.name) and provider in (None, a.running_on)
        )

    def delete_agent(self, name: str) -> None:
        agent = self.agent(name)
        with self._sessions.begin() as s:
            s.execute(delete(AgentRow).where(AgentRow.id == agent.id))
        self._agents.pop(name, None)

    # --- shared components -----------------------------------------------------------------

    def backend(self, protocol: str) -> Backend:
        """One adapter per wire protocol, sharing the workspace transport."""
        backend = self._backends.get(protocol)
        if backend is None:
            from ironspire.protocols import backend_for

            backend = backend_for(protocol, self.transport)
            self._backends[protocol] = backend
        return backend

    def use_backend(self, protocol: str, backend: Backend) -> None:
        """Installs a specific adapter (an embedding application's own, or a test double)."""
        self._backends[protocol] = backend

    @property
    def analytics(self) -> Analytics:
        """Cost, tokens and KPIs over this workspace's usage ledger (see ``ironspire.analytics``)."""
        from ironspire.analytics import Analytics

        return Analytics(self)

    def export(self, path: str | Path, *, with_conversations: bool = False) -> Path:
        """Writes settings, providers, custom endpoints and agents as JSON (never a secret) to move
        them to another machine with ``import_``; history too with ``with_conversations``."""
        from ironspire.workspace.portable import export_json

        return export_json(self, Path(path), with_conversations=with_conversations)

    def backup(self, path: str | Path) -> Path:
        from ironspire.workspace.portable import backup

        return backup(self, Path(path))

    def import_(self, path: str | Path) -> dict[str, int]:
        from ironspire.workspace.portable import import_file

        return import_file(self, Path(path))


def _component(module: str, name: str) -> Any:
    from importlib import import_module

    try:
        return getattr(import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(
            f"this Ironspire installation lacks {module}.{name} ({exc}).",
            hint="Reinstall Ironspire; the workspace needs it.",
        ) from exc
