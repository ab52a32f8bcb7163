"""Credentials: keychain first, environment second, never plaintext, never shown in full."""

from __future__ import annotations

import ast
import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
        store.set("mistral", "api_key", "mistral-kc-value-x7Q2")
    text = str(info.value)
    assert "no keychain" in text and "encrypted file" in text and "mistral-kc-value-x7Q2" not in text
    assert store.remove("mistral") is False


def test_autodetection_only_accepts_os_keychains(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Headless Linux: keyring offers only its fail backend and file backends; none is a keychain."""
    from keyrings.cryptfile.cryptfile import CryptFileKeyring
    from keyrings.cryptfile.file import PlaintextKeyring

    monkeypatch.delenv("PYTHON_KEYRING_BACKEND")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))  # no keyringrc.cfg
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    # the file backends are imported, so keyring counts them among its viable backends
    assert {PlaintextKeyring, CryptFileKeyring} <= set(keyring.backend.KeyringBackend.get_viable_backends())
    store = CredentialStore()
    info = store.info()
    assert info.kind == "none" and "headless Linux" in (info.problem or "")
    with pytest.raises(ConfigurationError, match="no keychain"):
        store.set("groq", "api_key", "gsk_never_written_anywhere")
    assert not (tmp_path / "data").exists()


def test_autodetection_takes_the_os_keychain_when_there_is_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Linux with a Secret Service (GNOME Keyring, KeePassXC): keyring reports its backend usable."""
    from keyring.backends import SecretService

    monkeypatch.delenv("PYTHON_KEYRING_BACKEND")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    # keyring registers every backend class it sees; this one is gone again after the test
    monkeypatch.setattr(keyring.backend.KeyringBackend, "_classes", set(keyring.backend.KeyringBackend._classes))

    class Answering(SecretService.Keyring):
        priority = 5.0  # what SecretService.Keyring reports when the service answers on D-Bus

    Answering.__module__ = SecretService.__name__
    info = CredentialStore().info()
    assert info.kind == "keychain" and info.name == "OS keychain (SecretService)"


def test_autodetection_loads_no_keyring_plugin_and_no_other_platforms_keychain(tmp_path: Path) -> None:
    """A process's first keyed turn waits for this: keyring's own discovery (every installed
    plugin's entry point, every platform's module) took ~100 ms of it, for backends never chosen."""
    code = ("import sys; from ironspire.credentials import _detect_keychain; backend, info = _detect_keychain(); "
            "print(info.kind, sorted(m for m in sys.modules if m.startswith(('keyrings', 'keyring.backends'))))")
    env = {k: v for k, v in os.environ.items() if k != "PYTHON_KEYRING_BACKEND"}
    env.update(XDG_CONFIG_HOME=str(tmp_path / "config"), XDG_DATA_HOME=str(tmp_path / "data"))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    kind, loaded = done.stdout.split(" ", 1)
    modules = set(ast.literal_eval(loaded))
    assert not any(m.startswith("keyrings") for m in modules)  # e.g. keyrings.cryptfile, installed for the tests
    foreign = {"darwin": {"keyring.backends.Windows"}, "win32": {"keyring.backends.macOS"}}.get(
        sys.platform, {"keyring.backends.macOS", "keyring.backends.Windows"})
    assert kind in ("none", "keychain") and not modules & foreign


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


# --- the encrypted file: one key derivation per process, authenticated, converted from cryptfile ---


@pytest.fixture
def derivations(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, int]]:
    """Every Argon2 derivation made, with its cost parameters (argon2-cffi's only entry point)."""
    from argon2 import low_level

    calls: list[dict[str, int]] = []
    real = low_level.hash_secret_raw

    def counting(**kw: Any) -> bytes:
        calls.append({k: kw[k] for k in ("time_cost", "memory_cost", "parallelism")})
        return real(**kw)

    monkeypatch.setattr(low_level, "hash_secret_raw", counting)
    return calls


BOX_KEYS = {"openai": "sk-proj-derive-once-0001", "groq": "gsk_derive_once_0002", "mistral": "mistral-once-0003",
            "deepseek": "sk-deepseek-once-0004", "xai": "xai-derive-once-0005", "fireworks": "fw-derive-once-0006"}


def test_encrypted_file_derives_its_key_once_whatever_the_number_of_keys(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch, derivations: list[dict[str, int]]
) -> None:
    store = CredentialStore()
    path = store.use_encrypted_file("correct horse battery")
    for pid, key in BOX_KEYS.items():
        store.set(pid, "api_key", key)
    assert store.remove("xai") is True
    assert len(derivations) == 1  # creating the file; writes reuse the key

    monkeypatch.setenv(PASSPHRASE_ENV, "correct horse battery")
    reader = CredentialStore()  # what `providers list` or `ask` does in a new process
    for pid in BOX_KEYS:
        reader.get(pid), reader.source(pid)
    assert reader.secrets_for(builtin("openai")) == {"api_key": BOX_KEYS["openai"]}
    assert reader.get("xai") is None and reader.get("groq") == BOX_KEYS["groq"]
    assert len(derivations) == 2
    # RFC 9106's low-memory Argon2id (above OWASP's minimums), not a weakened setting
    assert derivations[-1] == {"time_cost": 3, "memory_cost": 65536, "parallelism": 4}

    document = json.loads(path.read_text())
    assert document["kdf"]["name"] == "argon2id" and document["cipher"] == "AES-256-GCM"
    raw = path.read_bytes()
    # neither the secrets nor even which providers have one are readable in the file
    assert not [word for word in [*BOX_KEYS.values(), *BOX_KEYS, "api_key"] if word.encode() in raw]
    assert sorted(p.name for p in isolated_env.iterdir()) == ["credentials.cfg", "credentials.cfg.lock",
                                                             "keystore.json"]  # no temporary file left
    assert oct(path.stat().st_mode)[-3:] == "600"


def test_encrypted_file_refuses_tampering_and_weak_parameters(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = CredentialStore()
    path = store.use_encrypted_file("correct horse battery")
    store.set("openai", "api_key", "sk-tamper-target-0001")
    monkeypatch.setenv(PASSPHRASE_ENV, "correct horse battery")
    good = path.read_text()
    assert CredentialStore().get("openai") == "sk-tamper-target-0001"

    def rewritten(change: Any) -> None:
        document = json.loads(good)
        change(document)
        path.write_text(json.dumps(document))

    def flip_byte(d: dict[str, Any]) -> None:
        data = bytearray(base64.b64decode(d["ciphertext"]))
        data[5] ^= 1
        d["ciphertext"] = base64.b64encode(bytes(data)).decode()

    for change in (flip_byte, lambda d: d["kdf"].update(time_cost=4), lambda d: d.update(extra="x")):
        rewritten(change)
        with pytest.raises(ConfigurationError, match="does not unlock"):
            CredentialStore().get("openai")
    rewritten(lambda d: d["kdf"].update(memory_cost=1024, time_cost=1))
    with pytest.raises(ConfigurationError, match="weaker than OWASP"):
        CredentialStore().get("openai")
    rewritten(lambda d: d["kdf"].update(memory_cost=2**24))  # 16 GiB: refused, not attempted
    with pytest.raises(ConfigurationError, match="out of range"):
        CredentialStore().get("openai")
    path.write_text("password = hunter2\n")
    with pytest.raises(ConfigurationError, match="not an Ironspire credential file"):
        CredentialStore().get("openai")


def test_two_processes_writing_keep_both_keys(isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    CredentialStore().use_encrypted_file("shared passphrase")
    monkeypatch.setenv(PASSPHRASE_ENV, "shared passphrase")
    first, second = CredentialStore(), CredentialStore()
    assert first.get("openai") is None and second.get("groq") is None  # both opened before either writes
    first.set("openai", "api_key", "sk-first-writer-0001")
    second.set("groq", "api_key", "gsk_second_writer_0002")
    assert first.remove("openai") is True
    third = CredentialStore()
    assert (third.get("openai"), third.get("groq")) == (None, "gsk_second_writer_0002")


def write_cryptfile(path: Path, passphrase: str, entries: dict[str, str]) -> None:
    """A credentials.cfg as Ironspire wrote it before, through keyrings.cryptfile itself."""
    from keyrings.cryptfile.cryptfile import CryptFileKeyring

    ring = CryptFileKeyring()
    ring.file_path = str(path)
    ring.keyring_key = passphrase
    for username, value in entries.items():
        ring.set_password("ironspire", username, value)
    path.chmod(0o600)


def test_a_keyrings_cryptfile_file_is_converted_once(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch, derivations: list[dict[str, int]]
) -> None:
    from keyrings.cryptfile.cryptfile import CryptFileKeyring

    # cryptfile's own derivation (t=15, 64 MiB, per entry) made cheap: it is the old format's cost,
    # paid once at conversion; the converted file below runs on Ironspire's real parameters
    monkeypatch.setattr(CryptFileKeyring, "time_cost", 1)
    monkeypatch.setattr(CryptFileKeyring, "memory_cost", 2**10)
    isolated_env.mkdir(parents=True, exist_ok=True)
    (isolated_env / "keystore.json").write_text('{"store": "encrypted-file"}\n')
    legacy = isolated_env / "credentials.cfg"
    write_cryptfile(legacy, "old passphrase", {"openai:api_key": "sk-legacy-openai-0001",
                                               "custom-box:api_key": "legacy-box-key-0002"})
    before = legacy.read_bytes()
    assert before.startswith(b"[keyring_2Dsetting]")

    monkeypatch.setenv(PASSPHRASE_ENV, "not the old passphrase")
    with pytest.raises(ConfigurationError, match="does not unlock"):
        CredentialStore().get("openai")
    assert legacy.read_bytes() == before  # a failed unlock changes nothing

    monkeypatch.setenv(PASSPHRASE_ENV, "old passphrase")
    store = CredentialStore()
    assert store.get("openai") == "sk-legacy-openai-0001" and store.source("openai") == "keychain"
    assert store.get("custom-box") == "legacy-box-key-0002"
    converted = legacy.read_bytes()
    assert json.loads(converted)["format"] == "ironspire-credentials"
    assert b"sk-legacy-openai-0001" not in converted and oct(legacy.stat().st_mode)[-3:] == "600"

    derivations.clear()
    monkeypatch.setitem(sys.modules, "keyrings.cryptfile.cryptfile", None)  # no longer needed
    again = CredentialStore()
    assert again.get("openai") == "sk-legacy-openai-0001" and again.get("custom-box") == "legacy-box-key-0002"
    assert len(derivations) == 1


def test_converting_without_keyrings_cryptfile_says_what_to_do(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from keyrings.cryptfile.cryptfile import CryptFileKeyring

    monkeypatch.setattr(CryptFileKeyring, "time_cost", 1)
    monkeypatch.setattr(CryptFileKeyring, "memory_cost", 2**10)
    isolated_env.mkdir(parents=True, exist_ok=True)
    legacy = isolated_env / "credentials.cfg"
    write_cryptfile(legacy, "old passphrase", {"openai:api_key": "sk-legacy-openai-0003"})
    before = legacy.read_bytes()
    monkeypatch.setitem(sys.modules, "keyrings.cryptfile.cryptfile", None)
    with pytest.raises(ConfigurationError, match="older Ironspire") as info:
        CredentialStore().use_encrypted_file("old passphrase")
    assert "pip install keyrings.cryptfile" in str(info.value) and legacy.read_bytes() == before


def test_keychain_reads_are_remembered_briefly_and_writes_seen_at_once(
    memory_keyring: type[MemoryKeyring],
) -> None:
    """A turn reads the key every time; the keychain must not be asked on every turn, but a key
    changed with set-key in this process must be used from the next turn on."""
    from ironspire.credentials import CredentialStore

    backend = memory_keyring()
    calls: list[str] = []
    original = backend.get_password

    def counting(service: str, username: str) -> str | None:
        calls.append(username)
        return original(service, username)

    backend.get_password = counting  # type: ignore[method-assign]
    store = CredentialStore(backend)
    store.set("openai", "api_key", "sk-first-key-123456")
    for _ in range(5):
        assert store.get("openai") == "sk-first-key-123456"
    assert calls.count("openai:api_key") == 1
    store.set("openai", "api_key", "sk-second-key-654321")
    assert store.get("openai") == "sk-second-key-654321"
    assert store.remove("openai") is True
    assert store.get("openai") is None
