"""Test isolation: every test gets its own IRONSPIRE_HOME and no provider credentials from the
machine, so nothing a developer has configured can leak into (or be changed by) the suite."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.llamacpp import llamacpp_server  # noqa: F401  (one server for the whole session)

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("IRONSPIRE_SHARED", REPO.parent / "shared"))
REALDATA = SHARED / "realdata"

_PROVIDER_ENV = (
    "ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY", "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE",
    "AZURE_OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT", "MISTRAL_API_KEY", "DEEPSEEK_API_KEY", "XAI_API_KEY",
    "GROQ_API_KEY", "TOGETHER_API_KEY", "FIREWORKS_API_KEY", "OLLAMA_HOST", "CLAUDE_CODE_OAUTH_TOKEN",
    "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy",
)


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "ironspire-home"
    monkeypatch.setenv("IRONSPIRE_HOME", str(home))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring")
    for name in _PROVIDER_ENV:
        monkeypatch.delenv(name, raising=False)
    # no database URL from the machine, and none left behind by `ironspire --database` (which sets
    # it for the commands of its process): set-then-delete makes monkeypatch restore "unset"
    monkeypatch.setenv("IRONSPIRE_DATABASE_URL", "")
    monkeypatch.delenv("IRONSPIRE_DATABASE_URL")
    yield home
    # secrets a test registered are redacted (8-character pieces included) for the life of the
    # process; one test's "gsk_keychain_canary" must not blank the word "keychain" in the next
    from ironspire import errors

    errors._known_secrets.clear()


@pytest.fixture
def realdata() -> Path:
    if not REALDATA.is_dir():
        pytest.fail(f"recorded traffic not found at {REALDATA}; CI must run with ../shared beside the repo")
    return REALDATA


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Marks every test that uses the real llama.cpp server, so `scripts/test.sh --fast` (which
    skips that build) deselects them by marker, however a test reaches the fixture."""
    for item in items:
        if "llamacpp_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.llamacpp)
    # tests about the SQLite file itself run on SQLite only when the store's tests run on both engines
    kept = [item for item in items
            if not (item.get_closest_marker("sqlite_only") and "[postgresql" in item.nodeid)]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in kept])
        items[:] = kept


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    """One real PostgreSQL for the whole session, started the first time a test asks for it."""
    from support.postgres import PostgresServer

    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(postgres_server: Any) -> str:
    """A fresh, empty PostgreSQL database for one test."""
    return str(postgres_server.create_database())


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> str | None:
    """The store's tests run on both engines: None keeps SQLite in IRONSPIRE_HOME (the default),
    a URL puts the workspace on a fresh, migrated PostgreSQL database through IRONSPIRE_DATABASE_URL."""
    if request.param == "sqlite":
        return None
    url = str(request.getfixturevalue("postgres_server").create_database())
    from ironspire.store.engines import upgrade_url

    upgrade_url(url)
    monkeypatch.setenv("IRONSPIRE_DATABASE_URL", url)
    return url
