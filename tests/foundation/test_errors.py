"""Errors are read by people running a fleet: each must name the provider and say what to do,
and none may carry a secret."""

from __future__ import annotations

from ironspire.errors import (
    AuthenticationError,
    BadRequest,
    CapabilityError,
    ConfigurationError,
    ContextWindowExceeded,
    CredentialsMissing,
    IronspireError,
    ModelNotFound,
    ProviderError,
    ProviderUnavailable,
    RateLimitError,
    mask,
    redact,
    register_secret,
)


def test_hierarchy_matches_design() -> None:
    for cls in (ConfigurationError, CredentialsMissing, CapabilityError, ProviderError):
        assert issubclass(cls, IronspireError)
    for cls in (AuthenticationError, RateLimitError, ProviderUnavailable, BadRequest, ModelNotFound):
        assert issubclass(cls, ProviderError)
    assert issubclass(ContextWindowExceeded, BadRequest)


def test_every_provider_error_names_provider_and_gives_a_hint() -> None:
    errors: list[ProviderError] = [
        AuthenticationError("openai", "Incorrect API key provided", status=401),
        RateLimitError("groq", "slow down", retry_after=2.5),
        ProviderUnavailable("ollama", "cannot connect"),
        BadRequest("mistral", "bad field"),
        ContextWindowExceeded("google", "too long", used=2_000_000, limit=1_048_576),
        ModelNotFound("openai", "gpt-6-astr", suggestions=["gpt-6-astra"]),
    ]
    for e in errors:
        text = str(e)
        assert e.provider in text
        assert e.hint and e.hint in text
    assert "2.5" in str(errors[1])
    assert "gpt-6-astra" in str(errors[-1])


def test_credentials_missing_says_how_to_set_them() -> None:
    text = str(CredentialsMissing("xai", "api_key", "XAI_API_KEY"))
    assert "ironspire providers set-key xai" in text and "XAI_API_KEY" in text


def test_secrets_never_survive_into_messages() -> None:
    key = "sk-proj-ABCDEFGHIJKLMNOPQRSTUVWX1234"
    e = AuthenticationError("openai", f"Incorrect API key provided: {key}", raw=f'{{"key": "{key}"}}')
    assert key not in str(e) and key not in (e.raw or "")
    custom = "canary-value-without-known-shape"
    register_secret(custom)
    assert custom not in redact(f"echo {custom} back")
    assert "Bearer abcdefgh12345678" not in redact("Authorization: Bearer abcdefgh12345678")


def test_mask_shows_only_a_recognisable_fragment() -> None:
    assert mask("sk-1234567890abcdef") == "sk-…cdef"
    assert mask("short") == "*****"


def test_message_and_hint_read_as_two_sentences() -> None:
    e = ModelNotFound("claude-api", "claude-sonet-5-5", suggestions=["claude-sonnet-5-5"])
    assert "'claude-sonet-5-5'. Did you mean claude-sonnet-5-5?" in str(e)
    assert str(ProviderUnavailable("ollama", "cannot connect.")).startswith("ollama: cannot connect. ")


def test_redact_removes_every_fragment_of_a_known_secret() -> None:
    from ironspire.errors import REDACTED, redact

    key = "zq9-fragment-canary-0123456789abcdef"
    for echoed in (key[2:-2], key[:8], key[-8:], key[5:17] + key[20:30], key[10:18]):
        cleaned = redact(f"the provider said: {echoed} (sic)", [key])
        assert cleaned == f"the provider said: {REDACTED} (sic)"
    assert redact("short 0123456 pieces stay", [key]) == "short 0123456 pieces stay"  # 7 characters
    assert redact(f"{key} then {key[3:15]}", [key]).endswith(f"then {REDACTED}")
