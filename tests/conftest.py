"""Test isolation: every test gets its own IRONSPIRE_HOME and no provider credentials from the
machine, so nothing a developer has configured can leak into (or be changed by) the suite."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

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
    yield home


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
