"""The one definition of a "configured" provider, shared by the health monitor and the views.

It sits in the catalogue, below both, because it is a fact about a ``ProviderSpec`` and the
values found for it: the monitor (which must not import the workspace) and the view layer (which
reads the workspace) each gather those values their own way and ask the same question here, so
`providers list`, `providers check`, the chat session's background checks and a browser's status
dots can never disagree about which providers are set up.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from ironspire.catalog.providers import ProviderSpec

#: the setting that makes a provider sign with an external credential chain (AWS profiles, SSO)
#: instead of stored keys; only providers whose protocol allows it can have it set
CREDENTIAL_CHAIN = "credential_chain"


@dataclass(frozen=True, slots=True)
class Readiness:
    """Whether a provider can be used now, and if not, which values it still needs."""

    provider: str
    enabled: bool
    missing: tuple[str, ...] = ()
    """Names of required values that have none (auth field names, or ``base_url``)."""

    @property
    def configured(self) -> bool:
        """Every required value is present (enabled or not: a disabled provider keeps its setup)."""
        return not self.missing

    @property
    def ready(self) -> bool:
        """Configured and enabled: what may be checked or routed to."""
        return self.enabled and self.configured


def readiness(
    spec: ProviderSpec,
    *,
    present: Collection[str],
    base_url: str,
    enabled: bool = True,
    settings: Mapping[str, str] | None = None,
) -> Readiness:
    """``present``: names of the auth fields that have a value from any source (keychain,
    environment, settings, catalogue default); ``base_url``: the URL a request would use.

    A required field with a catalogue default is never missing. A provider that names no URL in
    the catalogue and has no ``base_url`` field (a local CLI, or a URL derived from the region)
    needs none from the user.
    """
    chained = (settings or {}).get(CREDENTIAL_CHAIN) == "true"
    missing = [
        f.name for f in spec.auth
        if f.required and not f.default and f.name not in present and not (f.secret and chained)
    ]
    wants_url = bool(spec.base_url) or any(f.name == "base_url" for f in spec.auth)
    if wants_url and not base_url and "base_url" not in missing:
        missing.append("base_url")
    return Readiness(spec.id, enabled, tuple(missing))
