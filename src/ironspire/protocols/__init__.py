"""One adapter per wire format; providers pick theirs by name in the catalogue.

Adapters are imported on first use so that starting the CLI or importing the package does not
pay for protocols the project never talks to.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from ironspire.errors import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ironspire.catalog.models import ModelSpec
    from ironspire.catalog.providers import Protocol, ProviderSpec
    from ironspire.protocols.base import Backend
    from ironspire.transport import Transport

_MODULES = {
    "openai_chat": ("ironspire.protocols.openai_chat", "OpenAIChat"),
    "openai_responses": ("ironspire.protocols.openai_responses", "OpenAIResponses"),
    "anthropic_messages": ("ironspire.protocols.anthropic_messages", "AnthropicMessages"),
    "gemini": ("ironspire.protocols.gemini", "Gemini"),
    "bedrock_converse": ("ironspire.protocols.bedrock_converse", "BedrockConverse"),
    "ollama_chat": ("ironspire.protocols.ollama_chat", "OllamaChat"),
    "claude_cli": ("ironspire.protocols.claude_cli", "ClaudeCLI"),
}

#: the OpenAI APIs, by the name the ``api`` setting of an OpenAI-style provider uses
OPENAI_APIS: dict[str, Protocol] = {"chat": "openai_chat", "responses": "openai_responses"}


def protocol_for(spec: ProviderSpec, model: ModelSpec, settings: Mapping[str, str]) -> Protocol:
    """The wire protocol of one request: the provider's ``api`` setting, else the API the model
    needs (``ModelSpec.api``), else the provider's own. Only OpenAI-style providers have a choice."""
    if spec.protocol not in OPENAI_APIS.values():
        return spec.protocol
    chosen = settings.get("api")
    if chosen:
        return OPENAI_APIS[chosen]
    if model.api == "responses":
        return OPENAI_APIS["responses"]
    return spec.protocol


#: adapters made without a transport, for the facts that need no connection (base-URL rules,
#: settings, context checks); adapters keep no per-request state, so one each is enough
_FACTS: dict[str, Backend] = {}


def backend_for(protocol: str, transport: Transport | None = None) -> Backend:
    """An adapter instance for ``protocol`` sharing ``transport`` (HTTP protocols only).

    Without a transport the adapter can encode, decode and answer the protocol's facts, but it
    refuses to send: there is no process-wide default transport.
    """
    if transport is None and protocol in _FACTS:
        return _FACTS[protocol]
    try:
        module_name, class_name = _MODULES[protocol]
    except KeyError:
        raise ConfigurationError(f"no adapter for wire protocol {protocol!r}.") from None
    cls: type[Backend] = getattr(import_module(module_name), class_name)
    from ironspire.protocols.base import HttpProtocol

    backend = cls(transport) if issubclass(cls, HttpProtocol) else cls()
    if transport is None:
        _FACTS[protocol] = backend
    return backend
