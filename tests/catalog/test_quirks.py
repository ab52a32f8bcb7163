"""Typed quirks: a misspelt quirk in the data is an error when the catalogue loads, never a
silent no-op, and the names shown in listings round-trip to the same behaviour."""

from __future__ import annotations

import json

import pytest

from ironspire.catalog import models
from ironspire.catalog.providers import builtin
from ironspire.catalog.quirks import (
    ChatCompletionsModelQuirks,
    ChatCompletionsQuirks,
    MessagesModelQuirks,
    model_quirks,
    quirks_of,
)
from ironspire.errors import ConfigurationError


def test_an_unknown_quirk_in_the_model_data_fails_at_load(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = json.loads(models.builtin_data())
    record = next(r for r in raw["models"] if r["provider"] == "claude-api")
    record["quirks"] = [*record["quirks"], "no_samplnig"]

    monkeypatch.setattr(models, "builtin_data", lambda: json.dumps(raw))
    with pytest.raises(ConfigurationError) as info:
        models.load_builtins()
    assert "no_samplnig" in str(info.value) and f"claude-api/{record['id']}" in str(info.value)
    assert "no_sampling" in str(info.value)  # the known names are listed


def test_a_quirk_of_another_protocol_is_unknown_too() -> None:
    with pytest.raises(ConfigurationError, match="thinking_always_on"):
        model_quirks("openai_chat", ["thinking_always_on"], "models.json: openai/x")
    with pytest.raises(ConfigurationError, match="no_sampling"):
        model_quirks("gemini", ["no_sampling"], "models.json: google/x")


def test_a_misspelt_provider_quirk_cannot_be_declared() -> None:
    with pytest.raises(TypeError):
        ChatCompletionsQuirks(stream_usgae=True)  # type: ignore[call-arg]


def test_names_round_trip_and_behaviour_is_read_typed() -> None:
    names = ["no_sampling", "max_completion_tokens"]
    quirks = model_quirks("openai_chat", names, "test")
    assert quirks == ChatCompletionsModelQuirks(sampling=False, max_tokens_field="max_completion_tokens")
    assert sorted(quirks) == sorted(names)
    opus = models.Registry().get("claude-api", "claude-opus-5-5")
    typed = quirks_of(opus.quirks, MessagesModelQuirks)
    assert not typed.sampling and not typed.forced_tool and not typed.prefill
    # a spec of another protocol reads as that protocol's defaults, not as an error
    assert quirks_of(builtin("google").quirks, ChatCompletionsQuirks) == ChatCompletionsQuirks()
    assert quirks_of(builtin("azure-openai").quirks, ChatCompletionsQuirks).url_form == "azure"
