"""Where a request goes: the agent's route, resolved at request time into a Target.

Resolution happens on every request rather than when an agent is created, so changing the
workspace default moves every inheriting agent at once and never an agent with its own route.
Values come, in order, from the workspace's stored settings, the provider's usual environment
variables, and the catalogue's defaults; secrets come only from the credential store.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from ironspire.catalog.providers import ProviderSpec
from ironspire.protocols import OPENAI_APIS as OPENAI_APIS  # the API choice is the protocols'; routing applies it
from ironspire.protocols import backend_for
from ironspire.protocols import protocol_for as protocol_for

#: provider settings that are not auth fields but may be set for any provider
GENERAL_SETTINGS = ("base_url", "timeout")
#: environment variables that point at a provider's server
_URL_ENV: dict[str, tuple[str, ...]] = {"ollama": ("OLLAMA_HOST",)}


@dataclass(frozen=True, slots=True)
class Route:
    """An agent's provider and model, and whether they come from the workspace default."""

    provider: str
    model: str | None
    inherited: bool

    def __str__(self) -> str:
        where = f"{self.provider}/{self.model}" if self.model else self.provider
        return where + (" (default)" if self.inherited else "")


def resolve(
    own_provider: str | None, own_model: str | None, default: tuple[str, str] | None
) -> Route | None:
    """The route an agent uses now; None when neither it nor the workspace names a provider.

    An agent may override only the model (it stays on the default provider) or only the
    provider (it gets that provider's default model, chosen by the workspace).
    """
    if own_provider is None and own_model is None:
        return None if default is None else Route(default[0], default[1], True)
    if own_provider is None:
        if default is None:
            return None
        return Route(default[0], own_model, False)
    if own_model is None and default is not None and default[0] == own_provider:
        return Route(own_provider, default[1], False)
    return Route(own_provider, own_model, False)


def allowed_settings(spec: ProviderSpec) -> tuple[str, ...]:
    # extra settings per protocol (the CLI's path, prompt-caching flags, Bedrock's chain): the adapter's
    names = [*GENERAL_SETTINGS, *backend_for(spec.protocol).settings]
    names += [f.name for f in spec.auth if not f.secret and f.name not in names]
    return tuple(names)


def setting_values(
    spec: ProviderSpec, stored: Mapping[str, str], env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Non-secret settings for a Target: stored value, else environment, else catalogue default."""
    env = os.environ if env is None else env
    values: dict[str, str] = {k: v for k, v in stored.items() if v}
    for f in spec.auth:
        if f.secret or f.name in values:
            continue
        from_env = next((env[name] for name in f.env if env.get(name)), None)
        if from_env:
            values[f.name] = from_env
        elif f.default:
            values[f.name] = f.default
    return values


def base_url(spec: ProviderSpec, settings: Mapping[str, str], env: Mapping[str, str] | None = None) -> str:
    """The provider's URL: override, environment, catalogue default, by its protocol's rules
    (``Backend.base_url``: Ollama's ``OLLAMA_HOST`` reading, Bedrock's URL from its region)."""
    env = os.environ if env is None else env
    from_env = next((env[n] for n in _URL_ENV.get(spec.id, ()) if env.get(n)), None)
    return backend_for(spec.protocol).base_url(spec, settings, from_env)
