"""Ironspire's encrypted credential file, for machines without an OS keychain.

keyrings.cryptfile, used before, runs Argon2id (t=15, 64 MiB) with a fresh salt for every entry,
so every read paid a full key derivation (about a second here) and a command touching N keys paid
N of them. Its parameters are not recorded in the file either, so they could not be tuned without
making existing files unreadable.

Here the whole store is one AES-256-GCM blob whose key Argon2id derives ONCE per process, with the
RFC 9106 "low memory" parameters (argon2-cffi's own default: t=3, 64 MiB, 4 lanes), above OWASP's
Argon2id minimums. The parameters and salt are recorded in the file (and authenticated as
associated data), so a later version can raise them while still reading older files. Writes keep
the salt, so they reuse the derived key, each with a fresh random nonce; they go through a
temporary file and an atomic rename, under a lock, re-reading what is on disk first so that two
processes setting different keys do not undo each other. Entry names are inside the ciphertext:
the file does not even say which providers have keys.

A credentials.cfg written by keyrings.cryptfile is converted the first time it is opened (that one
time costs a derivation per entry, and needs the keyrings.cryptfile package).
"""

from __future__ import annotations

import base64
import configparser
import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from importlib import import_module
from pathlib import Path
from typing import Any

from ironspire.errors import ConfigurationError

FORMAT = "ironspire-credentials"
VERSION = 1
CIPHER = "AES-256-GCM"
_NONCE_BYTES = 12

# Limits on the parameters accepted from a file. Lower bound: OWASP's Argon2id floor (19 MiB with
# two passes, or more memory with fewer passes); a file asking for less is refused rather than
# trusted. Upper bound: RFC 9106's first recommended option (2 GiB), so a damaged or hostile file
# cannot make Ironspire exhaust the machine's memory.
_MIN_MEMORY_KIB = 19 * 1024
_MIN_MEMORY_TIMES_PASSES = 19 * 1024 * 2
_MAX_MEMORY_KIB = 2 * 1024 * 1024
_MAX_TIME_COST = 64
_MAX_PARALLELISM = 64

_LEGACY_SETTINGS_SECTION = "keyring_2Dsetting"  # keyrings.cryptfile's escaped "keyring-setting"


class WrongPassphrase(Exception):
    """The passphrase does not decrypt the file (or the file was altered: GCM cannot tell which)."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any) -> bytes:
    if not isinstance(text, str):
        raise ValueError("not base64 text")
    return base64.b64decode(text.encode("ascii"), validate=True)


def default_kdf() -> dict[str, Any]:
    """Argon2id with argon2-cffi's RFC 9106 low-memory profile and a new random salt."""
    from argon2.profiles import RFC_9106_LOW_MEMORY as p

    return {"name": "argon2id", "version": p.version, "time_cost": p.time_cost, "memory_cost": p.memory_cost,
            "parallelism": p.parallelism, "salt": _b64(os.urandom(p.salt_len))}


def _check_kdf(kdf: Any, path: Path) -> None:
    def bad(why: str) -> ConfigurationError:
        return ConfigurationError(f"the credential file {path} {why}; Ironspire does not open it.",
                                  hint="Remove the file and set the keys again.")

    if not isinstance(kdf, dict) or kdf.get("name") != "argon2id" or kdf.get("version") != 19:
        raise bad("names a key derivation other than Argon2id v1.3")
    try:
        t, m, p = (int(kdf[k]) for k in ("time_cost", "memory_cost", "parallelism"))
        salt = _unb64(kdf["salt"])
    except (KeyError, TypeError, ValueError):
        raise bad("has unreadable key-derivation settings") from None
    if m < _MIN_MEMORY_KIB or m * t < _MIN_MEMORY_TIMES_PASSES or p < 1 or len(salt) < 16:
        raise bad("asks for a key derivation weaker than OWASP's Argon2id minimums")
    if m > _MAX_MEMORY_KIB or t > _MAX_TIME_COST or p > _MAX_PARALLELISM or m < 8 * p:
        raise bad("asks for key-derivation settings out of range")


def _derive(passphrase: str, kdf: dict[str, Any]) -> bytes:
    from argon2 import low_level

    return low_level.hash_secret_raw(
        secret=passphrase.encode("utf-8"), salt=_unb64(kdf["salt"]), time_cost=int(kdf["time_cost"]),
        memory_cost=int(kdf["memory_cost"]), parallelism=int(kdf["parallelism"]), hash_len=32,
        type=low_level.Type.ID, version=int(kdf["version"]),
    )


def _associated_data(header: dict[str, Any]) -> bytes:
    """The header, canonically encoded: altering any of it makes decryption fail."""
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode()


Entries = dict[str, dict[str, str]]  # service -> username -> secret


class KeyFile:
    """A keyring-style backend (get_password / set_password / delete_password) over one file.

    Open it with :meth:`open`; it keeps the derived key and the decrypted entries for its lifetime,
    so nothing after opening costs another derivation.
    """

    def __init__(self, path: Path, header: dict[str, Any], key: bytes, entries: Entries) -> None:
        self.path = path
        self._header = header
        self._key = key
        self._entries = entries

    @classmethod
    def open(cls, path: Path, passphrase: str) -> KeyFile:
        """Unlocks ``path``, creating it when missing and converting a keyrings.cryptfile file.

        Raises WrongPassphrase, or ConfigurationError when the file is not one Ironspire can read.
        """
        raw = path.read_bytes() if path.exists() else None
        if raw is None or raw.lstrip()[:1] != b"{":
            with _lock(path):  # creating or converting: one process at a time
                raw = path.read_bytes() if path.exists() else None
                if raw is None or raw.lstrip()[:1] != b"{":
                    return cls._create(path, passphrase, raw)
        header, nonce, ciphertext = _parse(raw, path)
        key = _derive(passphrase, header["kdf"])
        store = cls(path, header, key, _decrypt(key, header, nonce, ciphertext))
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
        return store

    @classmethod
    def _create(cls, path: Path, passphrase: str, legacy: bytes | None) -> KeyFile:
        entries: Entries = {} if legacy is None or not legacy.strip() else _read_cryptfile(path, legacy, passphrase)
        header: dict[str, Any] = {"format": FORMAT, "version": VERSION, "kdf": default_kdf(), "cipher": CIPHER}
        store = cls(path, header, _derive(passphrase, header["kdf"]), entries)
        store._write(entries)
        return store

    # --- keyring's backend interface --------------------------------------------------------

    def get_password(self, service: str, username: str) -> str | None:
        return self._entries.get(service, {}).get(username)

    def set_password(self, service: str, username: str, password: str) -> None:
        def change(entries: Entries) -> None:
            entries.setdefault(service, {})[username] = password

        self._update(change)

    def delete_password(self, service: str, username: str) -> None:
        if username not in self._entries.get(service, {}):
            from keyring.errors import PasswordDeleteError

            raise PasswordDeleteError("no such entry")

        def change(entries: Entries) -> None:
            entries.get(service, {}).pop(username, None)
            if service in entries and not entries[service]:
                del entries[service]

        self._update(change)

    # --- storage ------------------------------------------------------------------------------

    def _update(self, change: Callable[[Entries], None]) -> None:
        """Applies ``change`` to what is on disk now (another process may have written since we
        opened), so concurrent writers each keep their own change."""
        with _lock(self.path):
            entries = self._entries
            if self.path.exists():
                header, nonce, ciphertext = _parse(self.path.read_bytes(), self.path)
                if header != self._header:
                    raise ConfigurationError(
                        f"the credential file {self.path} was replaced while this command ran; nothing was stored.",
                        hint="Run the command again.",
                    )
                try:
                    entries = _decrypt(self._key, header, nonce, ciphertext)
                except WrongPassphrase:
                    raise ConfigurationError(f"the credential file {self.path} was altered; nothing was stored.",
                                             hint="Remove the file and set the keys again.") from None
            entries = {service: dict(users) for service, users in entries.items()}  # memory follows the file
            change(entries)
            self._write(entries)
            self._entries = entries

    def _write(self, entries: Entries) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        nonce = os.urandom(_NONCE_BYTES)
        plaintext = json.dumps({"entries": entries}, separators=(",", ":")).encode()
        ciphertext = AESGCM(self._key).encrypt(nonce, plaintext, _associated_data(self._header))
        document = {**self._header, "nonce": _b64(nonce), "ciphertext": _b64(ciphertext)}
        _atomic_write(self.path, (json.dumps(document, indent=1) + "\n").encode())

    def __repr__(self) -> str:
        return f"KeyFile({self.path})"


def _parse(raw: bytes, path: Path) -> tuple[dict[str, Any], bytes, bytes]:
    try:
        document = json.loads(raw)
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise ValueError("not ours")
        nonce, ciphertext = _unb64(document.pop("nonce")), _unb64(document.pop("ciphertext"))
    except (ValueError, KeyError, UnicodeDecodeError):
        raise ConfigurationError(f"{path} is not an Ironspire credential file, or it is damaged.",
                                 hint="Move it away and set the keys again.") from None
    if document.get("version") != VERSION or document.get("cipher") != CIPHER:
        raise ConfigurationError(
            f"the credential file {path} uses format {document.get('version')!r} ({document.get('cipher')}), "
            "which this version of Ironspire does not know.",
            hint="Upgrade Ironspire.",
        )
    _check_kdf(document.get("kdf"), path)
    if len(nonce) != _NONCE_BYTES:
        raise ConfigurationError(f"{path} is damaged (bad nonce).", hint="Move it away and set the keys again.")
    return document, nonce, ciphertext


def _decrypt(key: bytes, header: dict[str, Any], nonce: bytes, ciphertext: bytes) -> Entries:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    try:
        plaintext = AESGCM(key).decrypt(nonce, ciphertext, _associated_data(header))
    except InvalidTag:
        raise WrongPassphrase from None
    entries = json.loads(plaintext)["entries"]
    return {str(s): {str(u): str(v) for u, v in users.items()} for s, users in entries.items()}


def _read_cryptfile(path: Path, raw: bytes, passphrase: str) -> Entries:
    """Every entry of a keyrings.cryptfile file, read with that library (its own format and KDF)."""
    config = configparser.RawConfigParser()
    try:
        config.read_string(raw.decode("utf-8"))
        is_cryptfile = config.has_option(_LEGACY_SETTINGS_SECTION, "scheme")
    except (configparser.Error, UnicodeDecodeError):
        is_cryptfile = False
    if not is_cryptfile:
        raise ConfigurationError(f"{path} is not an Ironspire credential file, or it is damaged.",
                                 hint="Move it away and set the keys again.")
    try:
        cryptfile = import_module("keyrings.cryptfile.cryptfile")
        escape = import_module("keyrings.cryptfile.escape")
    except ImportError:
        raise ConfigurationError(
            f"{path} was written by an older Ironspire (keyrings.cryptfile format); converting it needs that "
            "package once.",
            hint="Run `pip install keyrings.cryptfile` and any command, or remove the file and set the keys again.",
        ) from None
    ring = cryptfile.CryptFileKeyring()
    ring.file_path = str(path)
    try:
        ring.keyring_key = passphrase  # checks the passphrase against the file's reference entry
    except ValueError:
        raise WrongPassphrase from None
    entries: Entries = {}
    for section in config.sections():
        if section == _LEGACY_SETTINGS_SECTION:
            continue
        service = escape.unescape(section)
        for option in config.options(section):
            username = escape.unescape(option)
            try:
                value = ring.get_password(service, username)
            except ValueError:
                raise WrongPassphrase from None
            if value is not None:
                entries.setdefault(service, {})[username] = value
    return entries


def _atomic_write(path: Path, data: bytes) -> None:
    """Readers see the old file or the new one, never a part; the file is never group/world readable."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # mode 600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if hasattr(os, "O_DIRECTORY"):  # make the rename itself durable (POSIX)
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    """An exclusive lock on a sidecar file (the data file itself is replaced, so it cannot hold one)."""
    try:
        import fcntl
    except ImportError:  # Windows: a keychain is always there; the file store simply runs unlocked
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
