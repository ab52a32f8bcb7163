"""Where provider secrets live: the OS keychain first, the usual environment variables second.

This is the only module that reads secrets. Every value it hands out is registered with
``errors.register_secret`` so that ``redact`` scrubs it from anything shown or stored later.

The keychain is reached through ``keyring`` (imported lazily: it is slow to import). Only the
platform's own keychains are picked automatically (macOS Keychain, Windows Credential Locker,
Secret Service, KWallet). Where none works -- typically headless Linux without a Secret Service --
the store says so and offers an encrypted file under IRONSPIRE_HOME (``keyfile``: Argon2id once per
process, then AES-256-GCM), unlocked with a passphrase from IRONSPIRE_KEYRING_PASSPHRASE or a
prompt. A plaintext backend is never used, even when keyring itself would pick one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeAlias

from ironspire.catalog.providers import AuthField, ProviderSpec, builtin
from ironspire.errors import ConfigurationError, register_secret
from ironspire.paths import write_private
from ironspire.wire import Secrets

log = logging.getLogger(__name__)

SERVICE = "ironspire"
KEYCHAIN_TTL = 30.0
Source: TypeAlias = Literal["keychain", "environment", "missing"]
StoreKind: TypeAlias = Literal["keychain", "encrypted-file", "none"]

#: "keychain" (default) or "encrypted-file"; wins over the choice saved in IRONSPIRE_HOME
STORE_ENV = "IRONSPIRE_KEYRING"
PASSPHRASE_ENV = "IRONSPIRE_KEYRING_PASSPHRASE"
_CHOICE_FILE = "keystore.json"
_ENCRYPTED_FILE = "credentials.cfg"
_CUSTOM = re.compile(r"^custom-[a-z0-9][a-z0-9-]{0,40}$")
_CUSTOM_FIELD = AuthField("api_key", "API key (Bearer)", required=False)
# keyring's own backends that are real OS keychains, per platform (the other Unixes share
# Linux's); anything else must be chosen explicitly
_NATIVE_MODULES = {"darwin": ("keyring.backends.macOS",), "win32": ("keyring.backends.Windows",)}
_UNIX_NATIVES = ("keyring.backends.SecretService", "keyring.backends.libsecret", "keyring.backends.kwallet")
_NO_STORE_MODULES = ("keyring.backends.fail", "keyring.backends.null", "keyring.backends.chainer")

NO_KEYCHAIN_HINT = (
    f"Store credentials in an encrypted file instead: set {PASSPHRASE_ENV} and run `ironspire providers set-key` "
    "again (or run `ironspire providers keystore --encrypted-file`, which asks for a passphrase), "
    "or use the provider's environment variable."
)


@dataclass(frozen=True, slots=True)
class StoreInfo:
    """What holds the secrets, for `providers list` and for error messages."""

    kind: StoreKind
    name: str
    problem: str | None = None


# Libraries that log request material at DEBUG: botocore's signer prints the canonical request,
# which carries X-Amz-Security-Token in clear. Their records are redacted before any handler.
_GUARDED_LOGGERS = ("botocore.auth", "botocore.endpoint", "aiohttp.client", "httpx2", "httpx", "httpcore.http11",
                    "httpcore.connection")


class _RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        from ironspire.errors import redact

        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


_log_filter: _RedactingFilter | None = None


def guard_logs() -> None:
    """Makes the chatty HTTP and signing libraries' log records pass through ``redact``."""
    global _log_filter
    if _log_filter is None:
        _log_filter = _RedactingFilter()
        for name in _GUARDED_LOGGERS:
            logging.getLogger(name).addFilter(_log_filter)


def _is_plaintext(backend: Any) -> bool:
    return "plaintext" in type(backend).__name__.lower()


def _module(backend: Any) -> str:
    return type(backend).__module__


def _viable(cls: Any) -> bool:
    try:
        return float(cls.priority) >= 1
    except Exception:  # keyring signals "not usable here" by raising from priority
        return False


class CredentialStore:
    """Secrets per provider field: keychain entry ``f"{pid}:{field}"`` under service "ironspire"."""

    def __init__(self, backend: Any = None, home: Path | None = None) -> None:
        self._given = backend
        self._home = home
        self._backend: Any = None
        self._info: StoreInfo | None = None
        self._detected = False
        # Keychain reads can cost milliseconds (or a D-Bus round trip) and a turn needs the key
        # every time, so values are remembered briefly; set/remove here update the memory at once,
        # and a change made from another process is seen within KEYCHAIN_TTL seconds.
        self._read_cache: dict[str, tuple[float, str | None]] = {}

    # --- which store -------------------------------------------------------------------------

    def _home_dir(self) -> Path:
        if self._home is None:
            from ironspire.paths import home

            self._home = home()
        return self._home

    def _choice(self) -> str:
        env = os.environ.get(STORE_ENV, "").strip().lower()
        if env:
            if env not in ("keychain", "encrypted-file"):
                raise ConfigurationError(
                    f"{STORE_ENV}={env!r} is not a credential store.", hint="Use keychain or encrypted-file."
                )
            return env
        path = self._home_dir() / _CHOICE_FILE
        if path.is_file():
            try:
                return str(json.loads(path.read_text()).get("store", "keychain"))
            except (ValueError, AttributeError):
                log.warning("ignoring unreadable %s", path)
        return "keychain"

    def info(self) -> StoreInfo:
        """Which store is in use, or why none is (without unlocking an encrypted file)."""
        if self._info is None:
            self._resolve(unlock=False)
        assert self._info is not None
        return self._info

    def _resolve(self, unlock: bool = True) -> Any:
        if self._given is not None:
            self._info = self._info or StoreInfo("keychain", type(self._given).__name__)
            return self._given
        if self._backend is not None or (self._detected and self._info is not None):
            return self._backend
        if self._choice() == "encrypted-file":
            path = self._home_dir() / _ENCRYPTED_FILE
            self._info = StoreInfo("encrypted-file", f"encrypted file {path}")
            if not unlock:
                return None
            self._backend = self._open_encrypted(path, passphrase=None)
            return self._backend
        self._backend, self._info = _detect_keychain()
        self._detected = True
        return self._backend

    def _open_encrypted(self, path: Path, passphrase: str | None) -> Any:
        """Unlocks (or creates) the file: the one key derivation this process pays."""
        from ironspire.keyfile import KeyFile, WrongPassphrase

        if passphrase is None:
            passphrase = os.environ.get(PASSPHRASE_ENV) or _prompt_passphrase(path, confirm=not path.exists())
        if not passphrase.strip():
            raise ConfigurationError("the credential file passphrase is empty.")
        try:
            return KeyFile.open(path, passphrase)
        except WrongPassphrase:
            raise ConfigurationError(
                f"the passphrase does not unlock {path} (or the file was altered).",
                hint=f"Check {PASSPHRASE_ENV}, or remove the file and set the keys again.",
            ) from None

    def use_encrypted_file(self, passphrase: str) -> Path:
        """Switches this home to the encrypted file store (the user chose it; it is never automatic)."""
        path = self._home_dir() / _ENCRYPTED_FILE
        self._backend = self._open_encrypted(path, passphrase)
        self._info = StoreInfo("encrypted-file", f"encrypted file {path}")
        choice = self._home_dir() / _CHOICE_FILE
        write_private(choice, json.dumps({"store": "encrypted-file"}) + "\n")
        return path

    def use_keychain(self) -> None:
        (self._home_dir() / _CHOICE_FILE).unlink(missing_ok=True)
        self._backend, self._info, self._detected = None, None, False

    # --- values ------------------------------------------------------------------------------

    def auth_field(self, pid: str, field: str) -> AuthField:
        """The field's catalogue entry; ConfigurationError for unknown providers or fields."""
        if pid.startswith("custom-"):
            if not _CUSTOM.match(pid):
                raise ConfigurationError(f"{pid!r} is not a custom endpoint id (custom-<name>).")
            if field != "api_key":
                raise ConfigurationError(f"{pid}: custom endpoints have only an api_key, not {field!r}.")
            return _CUSTOM_FIELD
        return builtin(pid).field(field)

    def _read_keychain(self, pid: str, field: str) -> str | None:
        username = f"{pid}:{field}"
        cached = self._read_cache.get(username)
        now = time.monotonic()
        if cached is not None and now - cached[0] < KEYCHAIN_TTL:
            return cached[1]
        value = self._read_keychain_now(username)
        self._read_cache[username] = (now, value)
        return value

    def _read_keychain_now(self, username: str) -> str | None:
        backend = self._resolve()
        if backend is None:
            return None
        try:
            value = backend.get_password(SERVICE, username)
        except Exception as exc:  # a locked or broken keychain must not hide the environment fallback
            log.warning("keychain read failed for %s (%s); using the environment", username, type(exc).__name__)
            return None
        return value or None

    def _lookup(self, pid: str, field: str) -> tuple[str | None, Source]:
        spec_field = self.auth_field(pid, field)
        if spec_field.secret:
            value = self._read_keychain(pid, field)
            if value:
                return value, "keychain"
        if not pid.startswith("custom-"):
            for name in spec_field.env:
                value = os.environ.get(name, "").strip()
                if value:
                    return value, "environment"
        return None, "missing"

    def get(self, pid: str, field: str = "api_key") -> str | None:
        """The value (keychain wins over the environment), or None."""
        value, _ = self._lookup(pid, field)
        if value is not None and self.auth_field(pid, field).secret:
            register_secret(value)
            guard_logs()
        return value

    def source(self, pid: str, field: str = "api_key") -> Source:
        value, where = self._lookup(pid, field)
        if value is not None and self.auth_field(pid, field).secret:
            register_secret(value)
        return where

    def env_name(self, pid: str, field: str = "api_key") -> str | None:
        """The environment variable a value came from, so the user knows what to unset."""
        if pid.startswith("custom-"):
            return None
        for name in self.auth_field(pid, field).env:
            if os.environ.get(name, "").strip():
                return name
        return None

    def require_secret_field(self, pid: str, field: str) -> AuthField:
        """What ``set`` accepts, checked before anyone is asked to type a secret."""
        spec_field = self.auth_field(pid, field)
        if not spec_field.secret:
            raise ConfigurationError(
                f"{pid}: {field} is a setting, not a secret.",
                hint=f"Run `ironspire providers set {pid} {field} VALUE`.",
            )
        return spec_field

    def set(self, pid: str, field: str, value: str) -> None:
        self.require_secret_field(pid, field)
        value = value.strip()
        if not value:
            raise ConfigurationError(f"{pid}: an empty {field} was given; nothing was stored.")
        if any(c in value for c in "\r\n\0"):
            raise ConfigurationError(f"{pid}: the {field} contains a line break; paste it on one line.")
        register_secret(value)
        backend = self._writable()
        self._read_cache.pop(f"{pid}:{field}", None)
        try:
            backend.set_password(SERVICE, f"{pid}:{field}", value)
        except ConfigurationError:
            raise
        except Exception as exc:
            raise ConfigurationError(
                f"could not store {pid} {field} in the {self.info().name} ({type(exc).__name__}).",
                hint=NO_KEYCHAIN_HINT,
            ) from None

    def remove(self, pid: str, field: str = "api_key") -> bool:
        """Deletes the stored value; False when there was none (environment values are untouched)."""
        self.auth_field(pid, field)
        username = f"{pid}:{field}"
        self._read_cache.pop(username, None)
        if self._read_keychain(pid, field) is None:
            return False
        self._read_cache.pop(username, None)
        backend = self._writable()
        from keyring.errors import PasswordDeleteError

        try:
            backend.delete_password(SERVICE, username)
        except PasswordDeleteError:
            return False
        except ConfigurationError:
            raise
        except Exception as exc:
            raise ConfigurationError(
                f"could not remove {pid} {field} from the {self.info().name} ({type(exc).__name__})."
            ) from None
        return True

    def _writable(self) -> Any:
        backend = self._resolve()
        if backend is None:
            info = self.info()
            raise ConfigurationError(f"no keychain to store credentials in: {info.problem}", hint=NO_KEYCHAIN_HINT)
        return backend

    def secrets_for(self, spec: ProviderSpec) -> Secrets:
        """Every secret field of ``spec`` that has a value (missing ones are simply absent)."""

        values: dict[str, str] = {}
        for f in spec.secret_fields:
            value = self.get(spec.id, f.name)
            if value:
                values[f.name] = value
        return Secrets(values)

    def __repr__(self) -> str:
        return f"CredentialStore({self._info.name if self._info else 'unresolved'})"


def _native_keyrings() -> list[Any]:
    """The OS keychains of this platform that keyring can open. Only they are ever chosen, so only
    their modules are imported. ``keyring.backend.get_all_keyring`` also scans every installed
    plugin's entry point and imports every platform's module, and that took ~140 ms of a
    process's first keyed turn on headless Linux."""
    import importlib

    import keyring.backend

    natives = _NATIVE_MODULES.get(sys.platform, _UNIX_NATIVES)
    for name in natives:
        with contextlib.suppress(Exception):  # a backend whose dependencies are missing cannot be chosen
            importlib.import_module(name)
    rings = []
    for cls in keyring.backend.KeyringBackend.get_viable_backends():
        if cls.__module__.startswith(natives):
            with contextlib.suppress(TypeError):  # needs constructor arguments: not one keyring offers bare
                rings.append(cls())
    return rings


def _detect_keychain() -> tuple[Any, StoreInfo]:
    """The OS keychain keyring would use, or (None, why not). Plaintext backends are refused."""
    import keyring.backend
    import keyring.core

    try:
        chosen = keyring.core.load_env() or keyring.core.load_config()
    except Exception as exc:
        return None, StoreInfo("none", "no keychain", f"the configured keyring backend fails to load ({exc}).")
    if chosen is not None:
        if _module(chosen).startswith(_NO_STORE_MODULES):
            return None, StoreInfo(
                "none", "no keychain", f"keyring is configured with {type(chosen).__module__} (stores nothing)."
            )
        if _is_plaintext(chosen):
            return None, StoreInfo(
                "none", "no keychain",
                f"the configured backend {type(chosen).__name__} keeps secrets in plain text; Ironspire refuses it.",
            )
        return chosen, StoreInfo("keychain", f"keyring backend {type(chosen).__name__}")
    natives = [b for b in _native_keyrings() if _viable(type(b))]
    if natives:
        best = max(natives, key=lambda b: float(b.priority))
        label = {"macOS": "macOS Keychain", "Windows": "Windows Credential Locker"}.get(
            _module(best).rsplit(".", 1)[-1], _module(best).rsplit(".", 1)[-1]
        )
        return best, StoreInfo("keychain", f"OS keychain ({label})")
    return None, StoreInfo(
        "none", "no keychain",
        "no OS keychain works here (no Secret Service, KWallet, macOS Keychain or Windows Credential Locker; "
        "typical of headless Linux).",
    )


def _prompt_passphrase(path: Path, *, confirm: bool) -> str:
    if not sys.stdin or not sys.stdin.isatty():
        raise ConfigurationError(
            f"the credential file {path} is locked.",
            hint=f"Set {PASSPHRASE_ENV}, or run the command in a terminal to be asked for the passphrase.",
        )
    import getpass

    first = getpass.getpass("Passphrase for Ironspire's encrypted credential file: ")
    if confirm and getpass.getpass("Repeat the passphrase: ") != first:
        raise ConfigurationError("the two passphrases differ; nothing was stored.")
    return first
