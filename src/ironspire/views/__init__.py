"""The view layer: typed records of providers, agents, models and health, built from a Workspace.

The CLI renders these records and the web app shows them; neither derives presentation facts of
its own. Dependencies point one way: ``cli``/``web`` -> ``views`` -> ``workspace``; nothing here
imports a front end. "Configured" has one definition, ``ironspire.catalog.readiness``, which the
health monitor uses too.
"""

from ironspire.views._agents import agent, agents, default_route, health_warning, history
from ironspire.views._errors import error
from ironspire.views._health import check, health
from ironspire.views._models import discover, models
from ironspire.views._providers import (
    configured_ids,
    credential_store,
    keystore,
    provider,
    provider_readiness,
    providers,
    spec_record,
)
from ironspire.views.records import (
    AgentAlert,
    AgentView,
    AuthFieldView,
    DefaultRouteView,
    ErrorView,
    HealthView,
    HistoryEntryView,
    KeystoreView,
    ModelView,
    PriceView,
    ProviderView,
)

__all__ = [
    "AgentAlert",
    "AgentView",
    "AuthFieldView",
    "DefaultRouteView",
    "ErrorView",
    "HealthView",
    "HistoryEntryView",
    "KeystoreView",
    "ModelView",
    "PriceView",
    "ProviderView",
    "agent",
    "agents",
    "check",
    "configured_ids",
    "credential_store",
    "default_route",
    "discover",
    "error",
    "health",
    "health_warning",
    "history",
    "keystore",
    "models",
    "provider",
    "provider_readiness",
    "providers",
    "spec_record",
]
