"""Credentials: keychain first, environment second, never plaintext, never shown in full."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import keyring.backend
import keyring.backends.fail
import pytest

from ironspire.catalog.providers import CustomEndpoint, builtin
from ironspire.credentials import PASSPHRASE_ENV, STORE_ENV, CredentialStore
from ironspire.errors import ConfigurationError, CredentialsMissing, redact
from ironspire.protocols.base import Secrets
from support.memory_keyring import MemoryKeyring, use_memory_keyring


@pytest.fixture
def memory_keyring(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[MemoryKeyring]]:
    yield from use_memory_keyring(monkeypatch)


def test_keychain_wins_over_environment(memory_keyring: type[MemoryKeyring], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-environment-0001")
    store = CredentialStore()
    assert store.get("openai") == "sk-from-environment-0001"
    assert store.source("openai") == "environment"
    assert store.env_name("openai") == "OPENAI_API_KEY"

    store.set("openai", "api_key", "sk-from-keychain-0002\n")  # stdin leaves a newline
    assert memory_keyring.entries[("ironspire", "openai:api_key")] == "sk-from-keychain-0002"
    assert CredentialStore().get("openai") == "sk-from-keychain-0002"
    assert CredentialStore().source("openai") == "keychain"

    assert store.remove("openai") is True
    assert store.remove("openai") is False
    assert store.get("openai") == "sk-from-environment-0001"


def test_every_listed_environment_variable_is_a_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    store = CredentialStore()
    assert store.source("google") == "missing"
    assert store.get("google") is None
    monkeypatch.setenv("GOOGLE_API_KEY", "AIza-second-choice-000000000")
    assert store.get("google") == "AIza-second-choice-000000000"
    monkeypatch.setenv("GEMINI_API_KEY", "AIza-first-choice-0000000000")
    assert store.get("google") == "AIza-first-choice-0000000000"
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-3")
    assert store.get("bedrock", "region") == "eu-west-3"  # non-secret fields come from the environment only


def test_set_refuses_unknown_providers_fields_and_settings(memory_keyring: type[MemoryKeyring]) -> None:
    store = CredentialStore()
    with pytest.raises(ConfigurationError, match=r"unknown provider 'opnai'.*Did you mean openai"):
        store.set("opnai", "api_key", "sk-xxxxxxxxxxxx")
    with pytest.raises(ConfigurationError, match="no credential field 'token'"):
        store.set("openai", "token", "sk-xxxxxxxxxxxx")
    with pytest.raises(ConfigurationError, match="region is a setting") as info:
        store.set("bedrock", "region", "us-west-2")
    assert "providers set bedrock region" in str(info.value)
    with pytest.raises(ConfigurationError, match="only an api_key"):
        store.set("custom-box", "secret", "x" * 12)
    with pytest.raises(ConfigurationError, match="empty"):
        store.set("openai", "api_key", "  \n")
    with pytest.raises(ConfigurationError, match="line break"):
        store.set("openai", "api_key", "sk-one\nsk-two")
    assert memory_keyring.entries == {}


def test_custom_endpoints_use_the_keychain_only(
    memory_keyring: type[MemoryKeyring], monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint = CustomEndpoint("My Box", "http://127.0.0.1:9/v1", "qwen")
    pid = endpoint.provider_id
    monkeypatch.setenv("OPENAI_API_KEY", "sk-should-not-leak-to-custom")
    store = CredentialStore()
    assert store.get(pid) is None and store.source(pid) == "missing"
    store.set(pid, "api_key", "custom-canary-key-123")
    assert store.get(pid) == "custom-canary-key-123"
    assert store.secrets_for(endpoint.spec()) == {"api_key": "custom-canary-key-123"}


def test_secrets_for_resolves_every_secret_field_and_registers_them(
    memory_keyring: type[MemoryKeyring], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = CredentialStore()
    store.set("bedrock", "access_key_id", "AKIAKEYCHAINVALUE0001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "plain-looking-secret-from-env")
    monkeypatch.setenv("AWS_REGION", "us-west-2")
    secrets = store.secrets_for(builtin("bedrock"))
    assert isinstance(secrets, Secrets)
    assert dict(secrets) == {
        "access_key_id": "AKIAKEYCHAINVALUE0001", "secret_access_key": "plain-looking-secret-from-env"
    }
    assert "region" not in secrets and "session_token" not in secrets
    assert "plain-looking-secret-from-env" not in repr(secrets)
    # a value without any recognisable shape is still scrubbed once it has been read
    leaked = redact("signature failed for plain-looking-secret-from-env today")
    assert "plain-looking-secret-from-env" not in leaked
    assert "pla…-env" in leaked


def test_no_keychain_says_so_and_keeps_the_environment_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    # conftest configures keyring's null backend: the state of a machine with no keychain
    monkeypatch.setenv("MISTRAL_API_KEY", "mistral-env-value-123")
    store = CredentialStore()
    assert store.info().kind == "none"
    assert store.get("mistral") == "mistral-env-value-123"
    with pytest.raises(ConfigurationError) as info:
        store.set("mistral", "api_key", "mistral-keychain-value")
    text = str(info.value)
    assert "no keychain" in text and "encrypted file" in text and "mistral-keychain-value" not in text
    assert store.remove("mistral") is False


def test_autodetection_only_accepts_os_keychains(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Headless Linux: keyring offers only its fail backend and file backends; none is a keychain."""
    from keyrings.cryptfile.cryptfile import CryptFileKeyring
    from keyrings.cryptfile.file import PlaintextKeyring

    monkeypatch.delenv("PYTHON_KEYRING_BACKEND")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))  # no keyringrc.cfg
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setattr(
        keyring.backend, "get_all_keyring",
        lambda: [keyring.backends.fail.Keyring(), PlaintextKeyring(), CryptFileKeyring()],
    )
    store = CredentialStore()
    info = store.info()
    assert info.kind == "none" and "headless Linux" in (info.problem or "")
    with pytest.raises(ConfigurationError, match="no keychain"):
        store.set("groq", "api_key", "gsk_never_written_anywhere")
    assert not (tmp_path / "data").exists()


def test_a_configured_plaintext_backend_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyrings.cryptfile.file.PlaintextKeyring")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    store = CredentialStore()
    assert store.info().kind == "none" and "plain text" in (store.info().problem or "")
    with pytest.raises(ConfigurationError):
        store.set("xai", "api_key", "xai-never-in-plain-text-0001")
    assert not (tmp_path / "data").exists()


def test_encrypted_file_store(isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = CredentialStore()
    path = store.use_encrypted_file("correct horse battery")
    store.set("deepseek", "api_key", "sk-deepseek-canary-7777")
    assert store.info().kind == "encrypted-file"
    assert path.parent == isolated_env and oct(path.stat().st_mode)[-3:] == "600"
    assert b"sk-deepseek-canary-7777" not in path.read_bytes()

    monkeypatch.setenv(PASSPHRASE_ENV, "correct horse battery")
    again = CredentialStore()  # the choice is remembered in IRONSPIRE_HOME
    assert again.get("deepseek") == "sk-deepseek-canary-7777"
    assert again.source("deepseek") == "keychain"

    monkeypatch.setenv(PASSPHRASE_ENV, "wrong passphrase")
    with pytest.raises(ConfigurationError, match="does not unlock"):
        CredentialStore().get("deepseek")

    monkeypatch.delenv(PASSPHRASE_ENV)
    with pytest.raises(ConfigurationError, match="locked") as info:
        CredentialStore().get("deepseek")  # pytest's stdin is not a terminal: no prompt, a clear error
    assert PASSPHRASE_ENV in str(info.value)

    monkeypatch.setenv(STORE_ENV, "keychain")  # the environment overrides the saved choice
    assert CredentialStore().info().kind == "none"


def test_missing_credentials_error_names_the_fix() -> None:
    err = CredentialsMissing("groq", env="GROQ_API_KEY")
    assert "ironspire providers set-key groq" in str(err) and "GROQ_API_KEY" in str(err)


def test_signing_library_debug_logs_are_redacted(monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    """botocore's signer logs the canonical request, session token included, at DEBUG."""
    import logging

    monkeypatch.setenv("AWS_SESSION_TOKEN", "IQoJb3JpZ2luX2VjEXAMPLEsessionTOKEN")
    assert CredentialStore().get("bedrock", "session_token") == "IQoJb3JpZ2luX2VjEXAMPLEsessionTOKEN"
    with caplog.at_level(logging.DEBUG, logger="botocore.auth"):
        logging.getLogger("botocore.auth").debug("CanonicalRequest:\nx-amz-security-token:%s",
                                                 "IQoJb3JpZ2luX2VjEXAMPLEsessionTOKEN")
    assert "x-amz-security-token:IQo…OKEN" in caplog.text
    assert "IQoJb3JpZ2luX2VjEXAMPLEsessionTOKEN" not in caplog.text
