"""The project: default route, provider settings, custom endpoints and a fleet of agents.

A Workspace owns the pieces that must be shared by every agent in a process (one transport
with a pool per provider, one model registry, one credential store, one health monitor) and
the store that outlives the process. Everything an agent needs at request time is asked of the
workspace then, never copied into the agent, so settings changes apply immediately.

Several processes may open one workspace (the CLI beside a server, two terminals). The store
bumps a revision with every configuration write; each turn reads it (one cheap indexed query)
and, when another process changed something, reloads the configuration (in a worker thread)
first, so no process runs a turn on stale settings, disabled state, custom endpoints or routes.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ironspire.catalog.models import ModelSpec, Price, Registry, dynamic_model
from ironspire.catalog.providers import BUILTIN_PROVIDERS, CustomEndpoint, ProviderSpec, builtin, is_builtin
from ironspire.errors import ConfigurationError
from ironspire.protocols.base import Backend, Secrets, Target
from ironspire.store.store import URL_ENV, Config, Store, default_url
from ironspire.workspace import budgets, fallback, routing, validation
from ironspire.workspace.effort import DEFAULT_EFFORT, check_effort
from ironspire.workspace.fallback import DEFAULT_COOLDOWN, DEFAULT_TRIGGERS, FallbackRoute

if TYPE_CHECKING:
    from ironspire.analytics import Analytics
    from ironspire.catalog.discovery import DiscoveryResult
    from ironspire.transport import Transport
    from ironspire.workspace.agent import Agent
    from ironspire.workspace.portable import ImportPlan


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
    # prompt caching for every agent, in each provider's own form (protocols.base.PromptCache)
    "prompt_cache": None,
    # per-agent prompt caching, by agent id, over the workspace's ("off" turns it off for one agent)
    "agent_prompt_cache": {},
    "max_turn_seconds": 900.0,  # a turn that runs longer is stopped, its history unchanged
    "max_reply_bytes": 16 * 1024 * 1024,  # a reply larger than this (as stored) is refused, not committed
    # fallback routes (workspace/fallback.py): the chain of agents without their own, which
    # failures move a turn on, and how long an unreachable provider is passed over
    "default_fallback": None,
    "fallback_on": list(DEFAULT_TRIGGERS),
    "fallback_cooldown": DEFAULT_COOLDOWN,
    "budget": None,  # the workspace's spending budget (workspace/budgets.py), {"usd", "period"}
    # the user's prices per model, "provider/model" -> USD per million tokens (workspace/pricing.py)
    "price_overrides": {},
}
SETTING_CHOICES: dict[str, tuple[str, ...]] = {
    "degrade_images": ("error", "omit"),
    "degrade_tools": ("error", "flatten"),
    "foreign_reasoning": ("drop", "text"),
    "prompt_cache": ("off", "on", "5m", "1h", "24h"),
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
        database_url: str | None = None,
    ) -> None:
        self.home = home
        self.store = Store.open(database_url or os.environ.get(URL_ENV) or default_url(home))
        self.path = self.store.path
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
        self._custom_specs: dict[str, ProviderSpec] = {}
        self._installed: dict[str, Any] = {}  # the models of the listing last put in the registry, per provider
        self._agents: dict[str, Agent] = {}
        self._backends: dict[str, Backend] = {}
        self._gates: dict[str, budgets.Gate] = {}
        self._revision = -1  # the configuration revision the state in memory was read at
        #: True once a turn found that secrets come from the environment alone (no keychain or
        #: encrypted file to read): turns then read them on the loop instead of in a thread
        self._keychain_free: bool | None = None
        #: turns of this workspace holding their agent's lock now, on any loop: with one alone,
        #: no other can end beside it, so it commits at once instead of a pass later (commits.py)
        self._turns_in_flight = 0
        #: where the last restore kept the state it replaced (``import_`` of a backup)
        self.last_auto_backup: Path | None = None
        self._load()
        self.health = health(self.transport, self.target, provider_ids=self.provider_ids, is_enabled=self.is_enabled)
        self.transport.observers.append(self.health.observe)
        transitions = getattr(self.health, "transitions", None)
        if transitions is not None:  # health changes become the Reliability tab's timeline
            transitions.append(self._record_transition)
        share = getattr(self.health, "share", None)
        persist = getattr(self.health, "persist", None)
        if self.store.postgres and share is not None:  # workers on one database probe once for all
            share(self.store)
        elif persist is not None:  # the last known health outlives the command (warnings in `agents list`)
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
        database_url: str | None = None,
    ) -> Workspace:
        """Opens (creating and migrating as needed) the workspace stored under ``home``.

        The keyword arguments replace the shared components, for embedding and for tests.
        ``database_url`` (or the IRONSPIRE_DATABASE_URL environment variable) picks the store;
        by default it is the SQLite file ``ironspire.db`` in the home.
        """
        if home is None:
            from ironspire.paths import home as default_home

            base = default_home()
        else:
            from ironspire.paths import private_dir

            base = private_dir(Path(home).expanduser())
        if credentials is None:
            credentials = _component("ironspire.credentials", "CredentialStore")()
        if health is None:
            health = _component("ironspire.health", "HealthMonitor")
        if transport is None:
            from ironspire.transport import Transport

            transport = Transport()
        return cls(base, credentials=credentials, health=health, transport=transport,
                   registry=registry or Registry(), database_url=database_url)

    def _load(self) -> None:
        """Reads the stored state into memory; called again after a backup is restored."""
        self._apply(self.store.load_config())

    def refresh(self) -> bool:
        """Reloads the configuration if another process changed it; True if it did."""
        if self.store.config_revision() == self._revision:
            return False
        self._load()
        return True

    def _apply(self, config: Config) -> None:
        """Replaces the configuration held in memory by ``config`` (read from the store)."""
        stored = dict(DEFAULT_SETTINGS)
        stored.update(config.settings)
        self._settings = stored
        self._disabled = config.disabled
        self._provider_settings = config.provider_settings
        custom: dict[str, CustomEndpoint] = {}
        for row in config.custom_endpoints:
            endpoint = CustomEndpoint(
                row["name"], row["base_url"], row["model_id"], row["display_name"], row["context_window"],
                row["max_output_tokens"], bool(row["tools"]), bool(row["vision"]), bool(row["has_key"]),
            )
            custom[endpoint.provider_id] = endpoint
        for pid, old in self._custom.items():
            if custom.get(pid) != old:
                self._clear_runtime(pid)
        self._custom = custom
        self._custom_specs = {}
        for endpoint in custom.values():
            self._register_custom_model(endpoint)
        live = {record.name: record for record in config.agents}
        for name, agent in list(self._agents.items()):
            record = live.get(name)
            if record is None or record.id != agent.id:
                agent.deleted = True
                del self._agents[name]
            else:
                agent.system, agent.own_provider, agent.own_model = record.system, record.provider, record.model
                agent.effort = check_effort(record.effort)
        self._revision = config.revision

    def _adopt(self, revision: int) -> None:
        """After this process's own write: the state in memory is current at ``revision``, unless
        another process wrote in between (then the next turn reloads)."""
        if revision == self._revision + 1:
            self._revision = revision

    async def aclose(self) -> None:
        """Stops the periodic health checks, closes the HTTP pools and releases the database.

        Safe to call twice. Inside an event loop prefer this (or ``async with``) to ``close``:
        a running health monitor would otherwise keep probing and reopen a pool.
        """
        stop = getattr(self.health, "stop", None)
        if stop is not None:
            await stop()
        await self.transport.close()
        self.store.close()

    def close(self) -> None:
        """Releases the database; use ``aclose`` inside an event loop to close HTTP pools too."""
        self.store.close()

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
        """The workspace settings (per-agent values kept beside them are the agents')."""
        return {k: v for k, v in self._settings.items() if k in DEFAULT_SETTINGS}

    def set_setting(self, key: str, value: Any) -> None:
        self.setting(key)
        choices = SETTING_CHOICES.get(key)
        if choices and value not in choices:
            raise ConfigurationError(f"{key} must be one of {', '.join(choices)}, not {value!r}.")
        if key == "max_tokens" and value is not None:
            try:
                value = int(value)
                if not 0 < value <= 10_000_000:
                    raise ValueError
            except (TypeError, ValueError, OverflowError):
                raise ConfigurationError(f"max_tokens must be a whole number from 1 to 10,000,000, not {value!r}.") \
                    from None
        if key == "agent_prompt_cache":
            allowed = SETTING_CHOICES["prompt_cache"]
            if not isinstance(value, dict) or any(v not in allowed for v in value.values()):
                raise ConfigurationError(f"agent_prompt_cache maps agent ids to one of {', '.join(allowed)}.")
            value = {str(k): v for k, v in value.items()}
        if key == "max_turn_seconds":
            value = validation.seconds(value, "max_turn_seconds")
        if key == "max_reply_bytes":
            try:
                value = int(value)
                if not 1024 <= value <= 2**31:
                    raise ValueError
            except (TypeError, ValueError, OverflowError):
                raise ConfigurationError(f"max_reply_bytes must be a whole number from 1024 to 2**31, not {value!r}.") \
                    from None
        if key == "fallback_on":
            value = fallback.check_triggers([value] if isinstance(value, str) else value)
        if key == "default_fallback":
            self.set_default_fallback([r if isinstance(r, str) else "/".join(r) for r in value or ()])
            return
        if key == "budget":
            self.set_budget(None if value is None else value["usd"], value.get("period", "month") if value else "month")
            return
        if key in ("health_interval", "fallback_cooldown"):
            try:
                value = validation.seconds(value, key)
            except ConfigurationError:
                raise ConfigurationError(f"{key} must be a positive number of seconds, not {value!r}.") from None
        if key == "price_overrides":
            from ironspire.workspace import pricing

            if not isinstance(value, dict):
                raise ConfigurationError("price_overrides maps provider/model to prices (USD per million tokens).")
            value = {str(k): {f: getattr(pricing.parse(v), f) for f in pricing.PRICE_FIELDS}
                     for k, v in value.items()}
        self._write_setting(key, value)

    # --- prices ----------------------------------------------------------------------------

    def set_price(self, provider: str, model: str, *, input: float = 0.0, output: float = 0.0,
                  cache_read: float = 0.0, cache_write: float = 0.0) -> Price:
        """Sets the price (USD per million tokens) the ledger costs ``provider/model`` at from the
        next request on, over the catalogue's; past rows keep the price they used."""
        from ironspire.workspace import pricing

        self.provider(provider)
        if not model.strip():
            raise ConfigurationError("a price needs a model id.", hint="e.g. `ironspire models price openai gpt-4.1`")
        price = pricing.parse({"input": input, "output": output, "cache_read": cache_read,
                               "cache_write": cache_write})
        overrides = dict(self._settings.get(pricing.SETTING) or {})
        overrides[pricing.key(provider, model)] = {f: getattr(price, f) for f in pricing.PRICE_FIELDS}
        self._write_setting(pricing.SETTING, overrides)
        return price

    def clear_price(self, provider: str, model: str) -> bool:
        """Drops the user's price for the model (the catalogue's applies again); False if none was set."""
        from ironspire.workspace import pricing

        overrides = dict(self._settings.get(pricing.SETTING) or {})
        if overrides.pop(pricing.key(provider, model), None) is None:
            return False
        self._write_setting(pricing.SETTING, overrides)
        return True

    def price(self, provider: str, model: str) -> tuple[Price, str] | None:
        """The price a request of the model is costed at and its source ("override", "catalog"); None: unknown."""
        from ironspire.workspace import pricing

        self.provider(provider)
        own = (self._settings.get(pricing.SETTING) or {}).get(pricing.key(provider, model))
        if own is not None:
            return pricing.parse(own), "override"
        spec = self.registry.find(provider, model)
        return None if spec is None else pricing.resolve(None, spec)

    def _write_setting(self, key: str, value: Any) -> None:
        revision = self.store.set_settings({key: value})
        self._settings[key] = value
        self._adopt(revision)

    @property
    def default(self) -> tuple[str, str] | None:
        provider, model = self._settings.get("default_provider"), self._settings.get("default_model")
        return (provider, model) if provider and model else None

    def set_default(self, provider: str, model: str) -> None:
        """Sets the route every inheriting agent uses from its next request on."""
        self.provider(provider)
        self.registry.get(provider, model)
        revision = self.store.set_settings({"default_provider": provider, "default_model": model})
        self._settings["default_provider"], self._settings["default_model"] = provider, model
        self._adopt(revision)

    # --- fallbacks and budgets ----------------------------------------------------------------

    @property
    def default_fallback(self) -> tuple[FallbackRoute, ...]:
        """The fallback chain of every agent that has none of its own."""
        return fallback.from_stored(self._settings.get("default_fallback")) or ()

    def set_default_fallback(self, routes: str | Iterable[str | FallbackRoute] | None) -> None:
        """``"P/M,P/M"``, a list of routes, or None / empty to have none; each route is checked now."""
        self._put("default_fallback", fallback.to_stored(self.check_fallback(routes)) or None)

    def check_fallback(self, routes: str | Iterable[str | FallbackRoute] | None) -> tuple[FallbackRoute, ...]:
        if routes is None:
            return ()
        if isinstance(routes, str):
            parsed = fallback.parse_routes(routes)
        else:
            parsed = tuple(r if isinstance(r, FallbackRoute) else fallback.parse_routes(r)[0] for r in routes)
        for route in parsed:
            self.check_route(route.provider, route.model)
        return tuple(dict.fromkeys(parsed))

    @property
    def budget(self) -> budgets.Budget | None:
        return budgets.from_stored(self._settings.get("budget"))

    def set_budget(self, usd: float | None, period: str = "month") -> None:
        """The workspace's spending budget (None removes it)."""
        self._put("budget", None if usd is None else budgets.make_budget(usd, period).to_stored())

    def _put(self, key: str, value: Any) -> None:
        """Stores a value in the settings table (a workspace setting or a per-agent value) and
        holds it in memory, where turns read it."""
        revision = self.store.set_settings({key: value})
        self._settings[key] = value
        self._adopt(revision)

    def billed(self, pid: str) -> bool:
        try:
            return self.provider(pid).billed
        except ConfigurationError:  # a removed custom endpoint: its rows stay, counted as billed
            return True

    def budget_state(self, agent: Agent | None = None) -> budgets.BudgetState | None:
        """The workspace's budget now (or ``agent``'s own), None when there is none."""
        budget = self.budget if agent is None else agent.budget
        if budget is None:
            return None
        start, _ = budgets.period_bounds(budget.period)
        rows = self.store.spend(start, None if agent is None else agent.id)
        return budgets.state("workspace" if agent is None else "agent", None if agent is None else agent.name,
                             budget, rows, self.billed)

    def budget_gate(self, key: str) -> budgets.Gate:
        gate = self._gates.get(key)
        if gate is None:
            gate = self._gates[key] = budgets.Gate()
        return gate

    # --- providers -------------------------------------------------------------------------

    def provider(self, pid: str) -> ProviderSpec:
        custom = self._custom.get(pid)
        if custom is not None:
            spec = self._custom_specs.get(pid)
            if spec is None:  # built once per endpoint value: a turn asks for it several times
                spec = self._custom_specs[pid] = custom.spec()
            return spec
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

    def _clear_runtime(self, pid: str) -> None:
        """Drops the models discovered for ``pid`` from the registry (a listing installs again)."""
        self.registry.clear_runtime(pid)
        self._installed.pop(pid, None)

    async def _forget(self, pid: str) -> None:
        """Closes the pool and drops cached health and discovered models (registry and cache)."""
        from ironspire.catalog.discovery import CACHE

        await self.transport.close(pid)
        self.health.reset(pid)
        self._clear_runtime(pid)
        CACHE.forget(pid)

    def _set_enabled(self, pid: str, enabled: bool) -> None:
        revision = self.store.set_enabled(pid, enabled)
        if enabled:
            self._disabled.discard(pid)
        else:
            self._disabled.add(pid)
        self._adopt(revision)

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
        if name == "api" and value and value not in routing.OPENAI_APIS:
            raise ConfigurationError(f"{pid}: api must be one of {', '.join(routing.OPENAI_APIS)}, not {value!r}.",
                                     hint="chat = Chat Completions (/chat/completions), responses = the Responses API.")
        if value:
            if name == "timeout":
                validation.seconds(value, f"{pid}: timeout")
            elif name == "base_url" or name.endswith(("_url", "endpoint")):
                validation.url(value, f"{pid}: {name}")
            else:
                validation.text_setting(value, f"{pid}: {name}")
        revision = self.store.set_provider_setting(pid, name, value)
        if value:
            self._provider_settings.setdefault(pid, {})[name] = value
        else:
            self._provider_settings.get(pid, {}).pop(name, None)
        self._adopt(revision)

    async def discover_models(
        self, pid: str, *, refresh: bool = False, connect_timeout: float | None = None,
        secrets: Secrets | None = None,
    ) -> DiscoveryResult | None:
        """Asks a provider that lists its models at runtime (``ProviderSpec.lists_models``: Ollama,
        Groq, Together, Fireworks, custom endpoints) what it serves now, at the base URL and with
        the key a turn would use, and installs the answer in this registry.

        Answers are cached briefly (per URL and key) and nothing here raises for a provider that
        is down, refuses or cannot be read: the result carries the message instead, and a turn
        then fails at its request with the transport's own error. None for a provider that does
        not list its models or is disabled. An unknown provider id is a ConfigurationError.
        ``secrets``: the provider's credentials as a turn already read them (no second keychain
        read, which costs a trip to a thread on every turn to a listing provider).
        """
        spec = self.provider(pid)
        if not spec.lists_models or not self.is_enabled(pid):
            return None
        from ironspire.catalog.discovery import DEFAULT_CONNECT_TIMEOUT, DiscoveryResult, install
        from ironspire.protocols.listing import discover

        url = spec.base_url
        try:
            url = routing.base_url(spec, routing.setting_values(spec, self.provider_settings(pid)))
            if not any(f.name == "api_key" for f in spec.auth):
                key = None
            elif secrets is not None:
                key = secrets.get("api_key")
            else:
                key = await asyncio.to_thread(self.credentials.get, pid, "api_key")  # a keychain read: off the loop
            result = await discover(spec, url, key, transport=self.transport, refresh=refresh,
                                    connect_timeout=connect_timeout or DEFAULT_CONNECT_TIMEOUT)
        except Exception as exc:  # a locked keychain, a malformed URL: listing is best effort
            from ironspire.errors import redact

            return DiscoveryResult(pid, url, error=redact(f"{pid}: could not list models ({exc})"))
        # a cached answer (a copy sharing the listing's models) is in the registry already
        if result.ok and self._installed.get(pid) is not result.models:
            install(self.registry, result)
            self._installed[pid] = result.models
        return result

    def target(self, pid: str, model_id: str | None = None, *, secrets: Secrets | None = None) -> Target:
        """Everything one request to ``pid`` needs, read now from settings, environment and keychain
        (``secrets``: already read for this provider, as a turn does off the event loop)."""
        spec = self.provider(pid)
        model = self._model(pid, model_id)
        settings = routing.setting_values(spec, self.provider_settings(pid))
        url = routing.base_url(spec, settings)
        timeout = float(settings.get("timeout") or 120.0)
        if secrets is None:
            secrets = self.credentials.secrets_for(spec)
        protocol = routing.protocol_for(spec, model, settings)
        if protocol != spec.protocol:
            spec = replace(spec, protocol=protocol)
        return Target(spec, model, url, secrets, settings, timeout=timeout,
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
        if not isinstance(endpoint.base_url, str) or not endpoint.base_url.startswith(("http://", "https://")):
            raise ConfigurationError(
                f"custom endpoint base URL must start with http:// or https://: {endpoint.base_url!r}"
            )
        validation.url(endpoint.base_url, "custom endpoint base URL")
        validation.name(endpoint.name, "a custom endpoint")
        pid = endpoint.provider_id
        if is_builtin(pid):
            raise ConfigurationError(f"{pid!r} is a built-in provider id.")
        has_key = endpoint.has_key or bool(api_key)
        if api_key:
            self.credentials.set(pid, "api_key", api_key)
        revision = self.store.put_custom_endpoint(dict(
            provider_id=pid, name=endpoint.name, base_url=endpoint.base_url.rstrip("/"),
            model_id=endpoint.model_id, display_name=endpoint.display_name,
            context_window=endpoint.context_window, max_output_tokens=endpoint.max_output_tokens,
            tools=endpoint.tools, vision=endpoint.vision, has_key=has_key,
        ))
        from dataclasses import replace

        stored = replace(endpoint, base_url=endpoint.base_url.rstrip("/"), has_key=has_key)
        self._custom[pid] = stored
        self._custom_specs.pop(pid, None)
        self._clear_runtime(pid)
        self._register_custom_model(stored)
        self._adopt(revision)
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
        users = [a.name for a in self.store.agent_records() if a.provider == pid]
        if self.default is not None and self.default[0] == pid:
            users.append("(workspace default)")
        if users:
            raise ConfigurationError(
                f"{pid} is still used by: {', '.join(users)}.",
                hint="Move them to another provider first (`ironspire agents set NAME --provider P --model M`).",
            )
        revision = self.store.remove_custom_endpoint(pid)
        del self._custom[pid]
        self._custom_specs.pop(pid, None)
        self._provider_settings.pop(pid, None)
        self._disabled.discard(pid)
        self.credentials.remove(pid, "api_key")
        self._clear_runtime(pid)
        self.health.reset(pid)
        self._adopt(revision)

    def custom_endpoints(self) -> list[CustomEndpoint]:
        return [self._custom[k] for k in sorted(self._custom)]

    # --- agents ----------------------------------------------------------------------------

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
        self, name: str, provider: str | None = None, model: str | None = None, system: str | None = None,
        *, effort: str = DEFAULT_EFFORT,
    ) -> Agent:
        """Creates and stores an agent. Without ``provider``/``model`` it inherits the workspace
        default at each request (so ``set_default`` moves it); a route given here is checked now,
        so a typo fails at creation rather than at the first turn. ``effort`` (low / medium /
        high) is how deeply it reasons where its model can."""
        from ironspire.workspace.agent import Agent

        name = validation.name(name)
        level = check_effort(effort)
        self.check_route(provider, model)
        agent_id, revision = self.store.create_agent(name, system, provider, model, effort=level)
        agent = Agent(self, agent_id, name, system, provider, model, history=[], effort=level)
        self._agents[name] = agent
        self._adopt(revision)
        return agent

    def agent(self, name: str) -> Agent:
        """The stored agent of that name, the same object on every call (its turns are serialised
        through it); a ConfigurationError suggesting close names if there is none."""
        cached = self._agents.get(name)
        if cached is not None:
            return cached
        from ironspire.workspace.agent import Agent

        row = self.store.agent_record(name)
        if row is None:
            import difflib

            names = [a.name for a in self.store.agent_records()]
            close = difflib.get_close_matches(name, names, n=3)
            hint = (f"Did you mean {', '.join(close)}? " if close else "")
            hint += "Create it with `ironspire agents create NAME`."
            raise ConfigurationError(f"no agent named {name!r}.", hint=hint)
        agent = Agent(self, row.id, row.name, row.system, row.provider, row.model, history=None,
                      effort=check_effort(row.effort))
        self._agents[name] = agent
        return agent

    def agents(self) -> list[Agent]:
        return [self.agent(row.name) for row in self.store.agent_records()]

    def running_agents(self, *, agent: str | None = None, provider: str | None = None) -> int:
        """Agents of this workspace with a turn in flight now (optionally one agent or provider)."""
        return sum(
            1 for a in self._agents.values()
            if a.running_on is not None and agent in (None, a.name) and provider in (None, a.running_on)
        )

    def delete_agent(self, name: str) -> None:
        agent = self.agent(name)
        revision = self.store.delete_agent(agent.id)
        agent.deleted = True
        self._agents.pop(name, None)
        self._adopt(revision)

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

    def _record_transition(self, pid: str, previous: str | None, status: Any) -> None:
        self.store.add_transition(status.checked_at.timestamp(), pid, previous, status.state.value,
                                  status.detail or None)

    @property
    def analytics(self) -> Analytics:
        """Cost, tokens and KPIs over this workspace's usage ledger (see ``ironspire.analytics``)."""
        from ironspire.analytics import Analytics

        return Analytics(self.store, session_id=self.session_id, session_started=self.session_started,
                         running_agents=self.running_agents)

    def export(self, path: str | Path, *, with_conversations: bool = False) -> Path:
        """Writes settings, providers, custom endpoints and agents as JSON (never a secret) to move
        them to another machine with ``import_``; history too with ``with_conversations``."""
        from ironspire.workspace.portable import export_json

        return export_json(self, Path(path), with_conversations=with_conversations)

    def backup(self, path: str | Path) -> Path:
        from ironspire.workspace.portable import backup

        return backup(self, Path(path))

    def plan_import(self, path: str | Path, *, replace: bool = False) -> ImportPlan:
        """What ``import_`` would change (base URLs that keys will be sent to, histories replaced),
        changing nothing: show it to the user before importing a file from elsewhere."""
        from ironspire.workspace.portable import plan_import

        return plan_import(self, Path(path), replace=replace)

    def import_(self, path: str | Path, *, replace: bool = False) -> dict[str, int]:
        """Merges an export (an existing agent's history is kept unless ``replace``) or restores a
        backup (the replaced state is kept under ``backups/``, see ``last_auto_backup``)."""
        from ironspire.workspace.portable import import_file

        return import_file(self, Path(path), replace=replace)


def _component(module: str, name: str) -> Any:
    from importlib import import_module

    try:
        return getattr(import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(
            f"this Ironspire installation lacks {module}.{name} ({exc}).",
            hint="Reinstall Ironspire; the workspace needs it.",
        ) from exc
