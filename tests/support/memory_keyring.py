"""An in-memory keyring backend: a real KeyringBackend, so tests exercise keyring's own API
without touching the developer's keychain or needing a Secret Service on CI.

Values live on the class so that every store created during one test (each CLI invocation opens
the workspace anew) sees the same keychain; the ``memory_keyring`` fixture empties it per test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError


class MemoryKeyring(KeyringBackend):
    priority = 0.1  # type: ignore[assignment]  # low: keyring must never auto-pick it
    entries: dict[tuple[str, str], str] = {}  # noqa: RUF012 - shared on purpose (see module doc)

    def get_password(self, service: str, username: str) -> str | None:
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.entries.pop((service, username), None) is None:
            raise PasswordDeleteError(username)


def use_memory_keyring(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[MemoryKeyring]]:
    """Makes keyring (and so every CredentialStore) use an empty MemoryKeyring, as a user's config
    would; wrap it in a fixture: ``yield from use_memory_keyring(monkeypatch)``."""
    MemoryKeyring.entries = {}
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", f"{__name__}.MemoryKeyring")
    yield MemoryKeyring
    MemoryKeyring.entries = {}
