"""The records the CLI prints and the web app shows: frozen, typed, and JSON-ready.

``to_json()`` is exactly what `ironspire ... --json` prints, so a script, the terminal tables and
a browser's JSON twin all read one shape. Anything a screen needs beyond the raw facts (which
colour a status dot is, how a credential's origin is worded, which chips a model gets) is a
property here, so no front end derives it on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from ironspire.errors import Remedy
from ironspire.views.notices import fallback_notice

if TYPE_CHECKING:  # the health package loads the transport: only what needs it imports it
    from ironspire.catalog.models import Capability, ModelSpec
    from ironspire.health.status import HealthState, HealthStatus
    from ironspire.messages import Message

Dot: TypeAlias = Literal["green", "red", "yellow", "grey"]
CredentialSource: TypeAlias = Literal["keychain", "environment", "missing", "none"]
FieldSource: TypeAlias = Literal["keychain", "environment", "settings", "default", "missing"]

#: the status dot of Settings > Providers: green reachable, red unreachable or refused key,
#: yellow rate-limited, grey when nothing is known or nothing should be checked (keyed by the
#: ``HealthState`` values, a string enum)
DOTS: dict[str, Dot] = {
    "reachable": "green",
    "unreachable": "red",
    "invalid_key": "red",
    "rate_limited": "yellow",
    "not_configured": "grey",
    "disabled": "grey",
    "unknown": "grey",
}
STATE_LABELS: dict[str, str] = {
    "reachable": "reachable",
    "unreachable": "unreachable",
    "invalid_key": "invalid key",
    "rate_limited": "rate-limited",
    "not_configured": "not configured",
    "disabled": "disabled",
    "unknown": "unknown",
}


# --- health ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HealthView:
    """One provider's health as last learned; ``detail`` is the provider's own words, masked."""

    provider: str
    state: HealthState
    checked_at: datetime
    latency_ms: float | None = None
    detail: str = ""
    until: datetime | None = None

    @classmethod
    def of(cls, status: HealthStatus) -> HealthView:
        return cls(status.provider, status.state, status.checked_at, status.latency_ms, status.detail, status.until)

    @property
    def healthy(self) -> bool:
        return self.state == "reachable"

    @property
    def dot(self) -> Dot:
        return DOTS[self.state]

    @property
    def label(self) -> str:
        return STATE_LABELS[self.state]

    @property
    def checked(self) -> bool:
        """Whether ``checked_at`` and ``latency_ms`` describe a real observation (a provider not
        checked yet, or disabled, has neither)."""
        return self.state not in ("unknown", "disabled")

    @property
    def shown_latency_ms(self) -> float | None:
        """The latency worth showing: none for a check that never reached the provider."""
        return None if self.state == "not_configured" else self.latency_ms

    def to_json(self) -> dict[str, Any]:
        from ironspire.health.status import HealthStatus

        return HealthStatus(self.provider, self.state, self.checked_at, self.latency_ms, self.detail,
                            self.until).to_dict()


# --- providers ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuthFieldView:
    """One credential or setting of a provider and where its value comes from.

    Secrets carry only ``masked``; ``value`` is set for non-secret settings alone.
    """

    name: str
    label: str
    secret: bool
    required: bool
    env: tuple[str, ...]
    source: FieldSource
    env_var: str | None = None
    masked: str | None = None
    store: str | None = None
    """For a secret from the keychain: which store holds it (``keychain`` or ``encrypted-file``)."""
    value: str | None = None

    @property
    def optional_and_unset(self) -> bool:
        return self.source == "missing" and not self.required

    @property
    def where(self) -> str:
        """Where the value comes from, as people read it: keychain, env VAR, encrypted file..."""
        if self.optional_and_unset:
            return "optional"
        if self.source == "environment":
            return f"env {self.env_var}"
        if self.store == "encrypted-file":
            return "encrypted file"
        return self.source

    @property
    def shown(self) -> str | None:
        """What may be displayed of the value: the mask of a secret, a setting in full."""
        return self.masked or (self.value if not self.secret else None)

    def spec_json(self) -> dict[str, Any]:
        return {"name": self.name, "label": self.label, "secret": self.secret, "required": self.required,
                "env": list(self.env)}

    def to_json(self) -> dict[str, Any]:
        data = self.spec_json()
        if self.secret:
            data.update(source=self.source, env_var=self.env_var, masked=self.masked, store=self.store)
        else:
            data.update(source=self.source, env_var=self.env_var, value=self.value)
        return data


@dataclass(frozen=True, slots=True)
class ProviderView:
    """A provider card: catalogue facts, credentials (masked), settings, enabled and health."""

    id: str
    group: str
    display_name: str
    protocol: str
    default_base_url: str | None
    auth: tuple[AuthFieldView, ...]
    auth_note: str | None
    lists_models: bool
    enabled: bool
    base_url_override: str | None
    base_url: str
    """The URL a request would use now (override, environment, default); empty where none applies."""
    configured: bool
    missing: tuple[str, ...]
    health: HealthView
    remedy: Remedy | None = None
    """What would make it usable: store a key, set a value, or enable it."""

    @property
    def credential_source(self) -> CredentialSource:
        """Where the provider's secret comes from: ``missing`` while a required one has no value,
        else the origin of the first one set, else ``none`` (nothing needed, or an optional key
        left unset, as for a local server or the Claude CLI)."""
        secrets = [f for f in self.auth if f.secret]
        if any(f.required and f.source == "missing" for f in secrets):
            return "missing"
        first = next((f for f in secrets if f.source != "missing"), None)
        if first is None:
            return "none"
        return "environment" if first.source == "environment" else "keychain"

    @property
    def credential_masked(self) -> str | None:
        return next((f.masked for f in self.auth if f.secret and f.masked), None)

    def spec_json(self) -> dict[str, Any]:
        """The catalogue part alone (what `providers add-custom --json` prints as ``provider``)."""
        return {
            "id": self.id,
            "group": self.group,
            "display_name": self.display_name,
            "protocol": self.protocol,
            "base_url": self.default_base_url,
            "auth": [f.spec_json() for f in self.auth],
            "auth_note": self.auth_note,
            "lists_models": self.lists_models,
        }

    def to_json(self) -> dict[str, Any]:
        data = self.spec_json()
        data["auth"] = [f.to_json() for f in self.auth]
        data.update(
            enabled=self.enabled,
            base_url_override=self.base_url_override,
            configured=self.configured,
            credential={"source": self.credential_source, "masked": self.credential_masked,
                        "missing": list(self.missing)},
            health=self.health.to_json(),
            remedy=None if self.remedy is None else self.remedy.to_json(),
        )
        return data


@dataclass(frozen=True, slots=True)
class KeystoreView:
    """Where stored secrets are kept: the OS keychain, an encrypted file, or nothing usable."""

    kind: str
    name: str
    problem: str | None = None
    hint: str | None = None
    """What to do when there is no keychain (set the passphrase variable, or use the environment)."""

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "problem": self.problem, "hint": self.hint}


# --- agents ------------------------------------------------------------------------------------

AlertKind: TypeAlias = Literal["unhealthy", "disabled", "credentials_missing", "no_route"]


@dataclass(frozen=True, slots=True)
class AgentAlert:
    """Why an agent's next turn may fail, and the one action that would fix it (a sidebar badge)."""

    kind: AlertKind
    message: str
    remedy: Remedy | None = None

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "message": self.message,
                "remedy": None if self.remedy is None else self.remedy.to_json()}


@dataclass(frozen=True, slots=True)
class FallbackView:
    """The routes a turn tries after the agent's own, in order; ``inherited`` when they are the
    workspace's default chain (the agent set none of its own)."""

    routes: tuple[str, ...]
    inherited: bool

    def to_json(self) -> dict[str, Any]:
        return {"routes": list(self.routes), "inherited": self.inherited}


@dataclass(frozen=True, slots=True)
class BudgetView:
    """One spending budget now. ``level`` is "ok", "warning" (80% spent) or "exceeded" (turns
    under it are refused until ``resets_at``); ``unknown_turns`` are successful turns of unknown
    cost, counted apart and never as $0."""

    scope: Literal["agent", "workspace"]
    agent: str | None
    usd: float
    period: Literal["day", "month"]
    spent: float
    unknown_turns: int
    resets_at: float
    level: Literal["ok", "warning", "exceeded"]
    warning: str | None

    @property
    def fraction(self) -> float:
        return self.spent / self.usd

    @property
    def dot(self) -> Dot:
        return {"ok": "green", "warning": "yellow", "exceeded": "red"}[self.level]  # type: ignore[return-value]

    def to_json(self) -> dict[str, Any]:
        return {"scope": self.scope, "agent": self.agent, "usd": self.usd, "period": self.period,
                "spent": round(self.spent, 6), "fraction": round(self.fraction, 4), "unknown_turns": self.unknown_turns,
                "resets_at": self.resets_at, "level": self.level, "warning": self.warning}


@dataclass(frozen=True, slots=True)
class AgentView:
    name: str
    provider: str | None
    model: str | None
    inherited: bool
    own_provider: str | None
    own_model: str | None
    system: str | None
    warning: str | None
    """A short warning when the provider is known to be unhealthy or is disabled (health only:
    what `ask` prints before sending)."""
    alert: AgentAlert | None = None
    """The sidebar badge: also raised for a provider that lacks a credential or for no route."""
    messages: int | None = None
    unanswered: int | None = None
    """History size; only filled for a single agent's view (`agents show`)."""
    effort: str = "high"
    """How deeply the agent reasons (low / medium / high), where its model reasons."""
    fallback: FallbackView | None = None
    """Where a turn goes when the agent's own route fails (None: nowhere)."""
    budgets: tuple[BudgetView, ...] = ()
    """The budgets its turns count against: its own, then the workspace's."""

    @property
    def budget_warning(self) -> str | None:
        """The sidebar's and HUD's budget line: the first budget at 80% or more."""
        return next((b.warning for b in self.budgets if b.warning), None)

    @property
    def route_kind(self) -> Literal["default", "own"]:
        return "default" if self.inherited else "own"

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "provider": self.provider,
            "model": self.model,
            "inherited": self.inherited,
            "override": None if self.inherited else {"provider": self.own_provider, "model": self.own_model},
            "system": self.system,
            "effort": self.effort,
            "warning": self.warning,
            "alert": None if self.alert is None else self.alert.to_json(),
            "fallback": None if self.fallback is None else self.fallback.to_json(),
            "budgets": [b.to_json() for b in self.budgets],
            "budget_warning": self.budget_warning,
        }
        if self.messages is not None:
            data["messages"] = self.messages
        if self.unanswered is not None:
            data["unanswered"] = self.unanswered
        return data


@dataclass(frozen=True, slots=True)
class DefaultRouteView:
    provider: str | None
    model: str | None
    fallback: tuple[str, ...] = ()
    """The workspace's default fallback chain (for agents without their own)."""
    budget: BudgetView | None = None

    def to_json(self) -> dict[str, Any]:
        """The route; ``fallback`` and ``budget`` only once the workspace has them."""
        data: dict[str, Any] = {"provider": self.provider, "model": self.model}
        if self.fallback:
            data["fallback"] = list(self.fallback)
        if self.budget is not None:
            data["budget"] = self.budget.to_json()
        return data


@dataclass(frozen=True, slots=True)
class HistoryEntryView:
    """One stored message of an agent's conversation, with the provider and model that produced
    it (assistant turns) and whether it was answered (``unanswered``: its turn failed)."""

    message: Message
    status: str
    at: float
    """When it was stored (seconds since the epoch)."""

    @property
    def role(self) -> str:
        return self.message.role

    @property
    def produced_by(self) -> str | None:
        m = self.message
        return f"{m.provider}/{m.model}" if m.role == "assistant" and m.provider else None

    @property
    def fallback_notice(self) -> str | None:
        """For a reply a fallback route gave: the one line the chat shows (None otherwise)."""
        return fallback_notice(self.message)


    def to_json(self) -> dict[str, Any]:
        import json

        return {**json.loads(self.message.to_json()), "status": self.status, "at": self.at}


# --- models ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PriceView:
    """USD per million tokens."""

    input: float = 0.0
    output: float = 0.0
    cache_read: float = 0.0
    cache_write: float = 0.0

    @property
    def known(self) -> bool:
        return any((self.input, self.output, self.cache_read, self.cache_write))

    def labels(self, sep: str = " ") -> tuple[str, str]:
        """"$in / $out" and "$cache read / $cache write" as published ("-" where not reported);
        ``sep`` goes after each slash (a line break stacks a pair in a narrow table)."""
        from ironspire.views.formatting import price_pair

        return price_pair(self.input, self.output, sep), price_pair(self.cache_read, self.cache_write, sep)

    def to_json(self) -> dict[str, Any]:
        return {"input": self.input, "output": self.output, "cache_read": self.cache_read,
                "cache_write": self.cache_write}


@dataclass(frozen=True, slots=True)
class ModelView:
    provider: str
    id: str
    display_name: str
    context_window: int
    context_known: bool
    max_output_tokens: int
    tools: bool
    vision: bool
    reasoning: bool
    streaming: bool
    prompt_caching: bool
    price: PriceView
    deprecation: str | None
    status: str
    quirks: tuple[str, ...]
    source: str
    provider_name: str = ""
    """The provider's display name (a custom endpoint's own name)."""

    @classmethod
    def of(cls, m: ModelSpec, provider_name: str = "") -> ModelView:
        p = m.price
        return cls(m.provider, m.id, m.display_name, m.context_window, m.context_known, m.max_output_tokens,
                   m.tools, m.vision, m.reasoning, m.streaming, m.prompt_caching,
                   PriceView(p.input, p.output, p.cache_read, p.cache_write), m.deprecation, m.status,
                   tuple(sorted(m.quirks)), m.source, provider_name or m.provider)

    @property
    def key(self) -> str:
        return f"{self.provider}/{self.id}"

    def has(self, capability: Capability) -> bool:
        return bool(getattr(self, capability))

    @property
    def context_label(self) -> str:
        """The window as quoted (200K, 1M), with ``?`` where it is a default nobody reported."""
        from ironspire.views.formatting import tokens

        return tokens(self.context_window) + ("" if self.context_known else "?")

    @property
    def max_output_label(self) -> str:
        from ironspire.views.formatting import tokens

        return tokens(self.max_output_tokens)

    @property
    def chips(self) -> tuple[str, ...]:
        """Capability indicators, in the order the model picker shows them."""
        words = [c for c in ("tools", "vision", "reasoning") if getattr(self, c)]
        if not self.streaming:
            words.append("no-stream")
        return tuple(words)

    @property
    def note(self) -> str:
        """A few words at most: the retirement date, or a status other than plain "active"."""
        if self.deprecation:
            return f"retires {self.deprecation}"
        status = self.status.split("(", 1)[0].strip()
        return "" if status.startswith("active") else status

    def to_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider, "id": self.id, "display_name": self.display_name,
            "context_window": self.context_window, "max_output_tokens": self.max_output_tokens,
            "tools": self.tools, "vision": self.vision, "reasoning": self.reasoning, "streaming": self.streaming,
            "prompt_caching": self.prompt_caching, "price": self.price.to_json(), "deprecation": self.deprecation,
            "status": self.status, "quirks": list(self.quirks), "source": self.source, "key": self.key,
        }


# --- errors ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ErrorView:
    """A typed error as a screen shows it: what failed, the words, and the button (``remedy``)."""

    type: str
    message: str
    hint: str
    provider: str | None = None
    model: str | None = None
    remedy: Remedy | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "message": self.message, "hint": self.hint, "provider": self.provider,
                "model": self.model, "remedy": None if self.remedy is None else self.remedy.to_json(),
                **self.extra}


@dataclass(frozen=True, slots=True)
class ModelPriceView:
    """The price a model's requests are costed at: the user's, the catalogue's, or none (unknown:
    the ledger records an unknown cost, not $0)."""

    provider: str
    model: str
    price: PriceView | None
    source: str
    """"override", "catalog" or "unknown"."""

    def to_json(self) -> dict[str, Any]:
        price = None if self.price is None else {"input": self.price.input, "output": self.price.output,
                                                 "cache_read": self.price.cache_read,
                                                 "cache_write": self.price.cache_write}
        return {"provider": self.provider, "model": self.model, "price": price, "source": self.source}

    def describe(self) -> str:
        from ironspire.views.formatting import list_price

        name = f"{self.provider}/{self.model}"
        if self.price is None:
            return (f"{name}: price unknown; its requests are recorded with an unknown cost. "
                    f"Set one with `ironspire models price {self.provider} {self.model} --input X --output Y`.")
        p = self.price
        origin = "your price" if self.source == "override" else "catalogue price"
        return (f"{name} ({origin}, USD per million tokens): input {list_price(p.input)}, "
                f"output {list_price(p.output)}, cache read {list_price(p.cache_read)}, "
                f"cache write {list_price(p.cache_write)}")
