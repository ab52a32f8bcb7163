"""The shape of an export file, checked whole before an import changes anything.

An export may come from anyone. Every field is validated here first (types, bounds, names,
URLs, each message), so a hostile or damaged file is refused with one error naming the field,
and never half-imported.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError, field_validator

from ironspire.errors import ConfigurationError
from ironspire.workspace import validation

#: bounds on what one file may hold: far beyond a real workspace, short of exhausting memory
MAX_AGENTS, MAX_MESSAGES, MAX_TEXT = 10_000, 1_000_000, 1_000_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class Endpoint(_Strict):
    name: str
    base_url: str
    model_id: str = Field(min_length=1, max_length=500)
    display_name: str | None = Field(default=None, max_length=500)
    context_window: int = Field(default=32_768, gt=0, le=100_000_000)
    max_output_tokens: int = Field(default=4_096, gt=0, le=100_000_000)
    tools: StrictBool = True
    vision: StrictBool = False
    has_key: StrictBool = False

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _checked(validation.name, value, "a custom endpoint")

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _checked(validation.url, value, "custom endpoint base URL")


class ProviderEntry(_Strict):
    enabled: StrictBool | None = None
    settings: dict[str, str] = Field(default_factory=dict, max_length=100)


class Budget(_Strict):
    usd: float = Field(ge=0, le=1e9, allow_inf_nan=False)
    period: str = Field(default="month", max_length=10)


class AgentEntry(_Strict):
    name: str
    system: str | None = Field(default=None, max_length=MAX_TEXT)
    provider: str | None = Field(default=None, max_length=200)
    model: str | None = Field(default=None, max_length=500)
    messages: list[dict[str, Any]] | None = Field(default=None, max_length=MAX_MESSAGES)
    effort: str | None = Field(default=None, max_length=20)
    fallback: list[str] | None = Field(default=None, max_length=100)
    budget: Budget | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _checked(validation.name, value, "an agent")


class ExportFile(_Strict):
    format: str
    version: int
    exported_at: str | None = None
    settings: dict[str, Any] = Field(default_factory=dict, max_length=100)
    providers: dict[str, ProviderEntry] = Field(default_factory=dict, max_length=1_000)
    custom_endpoints: list[Endpoint] = Field(default_factory=list, max_length=1_000)
    agents: list[AgentEntry] = Field(default_factory=list, max_length=MAX_AGENTS)


def _checked(check: Any, value: str, what: str) -> str:
    try:
        return str(check(value, what))
    except ConfigurationError as exc:
        raise ValueError(exc.message) from None


def parse(data: Any, source: str) -> ExportFile:
    """The file as an ExportFile, or one ConfigurationError naming the first bad field."""
    import json

    from ironspire.messages import Message

    try:
        parsed = ExportFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ConfigurationError(f"{source} is not a valid Ironspire export: {where}: {first['msg']}; "
                                 "nothing was imported.") from None
    names = [a.name for a in parsed.agents]
    if len(set(names)) != len(names):
        raise ConfigurationError(f"{source} names an agent twice; nothing was imported.")
    for i, agent in enumerate(parsed.agents):
        for j, raw in enumerate(agent.messages or ()):
            try:
                Message.from_json(json.dumps(raw))
            except (ValueError, TypeError) as exc:
                raise ConfigurationError(f"{source}: agents.{i}.messages.{j} is not a valid message "
                                         f"({str(exc).splitlines()[0]}); nothing was imported.") from None
    return parsed
