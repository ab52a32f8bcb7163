"""The view layer: typed records of providers, agents, models and health, built from a Workspace.

The CLI renders these records and the web app shows them; neither derives presentation facts of
its own. Dependencies point one way: ``cli``/``web`` -> ``views`` -> ``workspace``; nothing here
imports a front end. "Configured" has one definition, ``ironspire.catalog.readiness``, which the
health monitor uses too.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ironspire.views._agents import (
        agent,
        agent_budgets,
        agents,
        default_route,
        history,
        workspace_budget,
    )
    from ironspire.views._errors import error
    from ironspire.views._health import check, health
    from ironspire.views._models import discover, model_price, models
    from ironspire.views._providers import (
        configured_ids,
        credential_store,
        keystore,
        provider,
        provider_readiness,
        providers,
        spec_record,
    )
    from ironspire.views.notices import fallback_notice, health_warning
    from ironspire.views.records import (
        AgentAlert,
        AgentView,
        AuthFieldView,
        BudgetView,
        DefaultRouteView,
        ErrorView,
        FallbackView,
        HealthView,
        HistoryEntryView,
        KeystoreView,
        ModelPriceView,
        ModelView,
        PriceView,
        ProviderView,
    )

# Loaded on first use, so that a command importing one helper (the CLI's number formatting) does
# not pay for every record module at start-up.
_WHERE = {
    "AgentAlert": "ironspire.views.records",
    "AgentView": "ironspire.views.records",
    "AuthFieldView": "ironspire.views.records",
    "BudgetView": "ironspire.views.records",
    "DefaultRouteView": "ironspire.views.records",
    "ErrorView": "ironspire.views.records",
    "FallbackView": "ironspire.views.records",
    "fallback_notice": "ironspire.views.notices",
    "agent_budgets": "ironspire.views._agents",
    "workspace_budget": "ironspire.views._agents",
    "HealthView": "ironspire.views.records",
    "HistoryEntryView": "ironspire.views.records",
    "KeystoreView": "ironspire.views.records",
    "ModelPriceView": "ironspire.views.records",
    "ModelView": "ironspire.views.records",
    "PriceView": "ironspire.views.records",
    "ProviderView": "ironspire.views.records",
    "agent": "ironspire.views._agents",
    "agents": "ironspire.views._agents",
    "check": "ironspire.views._health",
    "configured_ids": "ironspire.views._providers",
    "credential_store": "ironspire.views._providers",
    "default_route": "ironspire.views._agents",
    "discover": "ironspire.views._models",
    "model_price": "ironspire.views._models",
    "error": "ironspire.views._errors",
    "health": "ironspire.views._health",
    "health_warning": "ironspire.views.notices",
    "history": "ironspire.views._agents",
    "keystore": "ironspire.views._providers",
    "models": "ironspire.views._models",
    "provider": "ironspire.views._providers",
    "provider_readiness": "ironspire.views._providers",
    "providers": "ironspire.views._providers",
    "spec_record": "ironspire.views._providers",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'ironspire.views' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "AgentAlert",
    "AgentView",
    "AuthFieldView",
    "BudgetView",
    "DefaultRouteView",
    "ErrorView",
    "FallbackView",
    "HealthView",
    "HistoryEntryView",
    "KeystoreView",
    "ModelPriceView",
    "ModelView",
    "PriceView",
    "ProviderView",
    "agent",
    "agent_budgets",
    "agents",
    "check",
    "configured_ids",
    "credential_store",
    "default_route",
    "discover",
    "error",
    "fallback_notice",
    "health",
    "health_warning",
    "history",
    "keystore",
    "model_price",
    "models",
    "provider",
    "provider_readiness",
    "providers",
    "spec_record",
    "workspace_budget",
]
