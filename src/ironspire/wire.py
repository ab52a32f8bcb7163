"""The types every layer that moves a request shares: where it goes, what goes, with which secrets.

They sit below ``protocols``, ``transport`` and ``credentials`` (importing only the catalogue and
errors) because all three need them: the adapters build a ``WireRequest`` for a ``Target``, the
transport sends it, and the credential store fills ``Secrets``. Keeping them here is what lets
the transport know nothing about adapters, and the dependency point one way.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from ironspire.catalog.models import ModelSpec
from ironspire.catalog.providers import ProviderSpec
from ironspire.errors import ConfigurationError, CredentialsMissing, mask


class Secrets(Mapping[str, str]):
    """Credential values for one provider; its repr never shows them."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, str] | None = None) -> None:
        self._values = {k: v for k, v in (values or {}).items() if v}

    def __getitem__(self, key: str) -> str:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return "Secrets(" + ", ".join(f"{k}={mask(v)}" for k, v in self._values.items()) + ")"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class Target:
    """Where one request goes, resolved at request time from the agent's route."""

    provider: ProviderSpec
    model: ModelSpec
    base_url: str
    secrets: Secrets = field(default_factory=Secrets)
    settings: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 120.0
    connect_timeout: float = 10.0

    @property
    def provider_id(self) -> str:
        return self.provider.id

    def secret(self, name: str = "api_key") -> str:
        """A required credential, or CredentialsMissing saying how to set it."""
        value = self.secrets.get(name)
        if not value:
            env = next((f.env[0] for f in self.provider.auth if f.name == name and f.env), None)
            raise CredentialsMissing(self.provider.id, name, env)
        return value

    def setting(self, name: str) -> str:
        value = self.settings.get(name)
        if not value:
            for f in self.provider.auth:
                if f.name == name and f.default:
                    return f.default
            raise ConfigurationError(
                f"{self.provider.id}: setting {name!r} is not configured.",
                hint=f"Run `ironspire providers set {self.provider.id} {name} VALUE`.",
            )
        return value

    def url(self, path: str) -> str:
        return self.base_url.rstrip("/") + path


@dataclass(slots=True)
class WireRequest:
    """One HTTP request as an adapter built it; the transport sends it unchanged."""

    method: str
    url: str
    headers: dict[str, str]
    json: Any = None
    content: bytes | None = None
    params: dict[str, str] | None = None


ProbeState: TypeAlias = Literal["reachable", "unreachable", "rate_limited", "invalid_key", "not_configured"]


@dataclass(frozen=True, slots=True)
class ProbeOutcome:
    """What a health probe learned, in the health monitor's terms (``HealthState`` values).

    Adapters return it from ``Backend.probe``; the monitor adds the time and latency. It lives
    here, not in ``health``, so that protocols need not import the monitor's package.
    """

    state: ProbeState
    detail: str
    retry_after: float | None = None
