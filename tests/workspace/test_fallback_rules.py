"""The pure decisions behind fallbacks and budgets: what kind a failure is, when health rules a
provider out, how routes are written, where a budget period starts and resets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ironspire.errors import (
    AuthenticationError,
    BadRequest,
    ConfigurationError,
    ModelNotFound,
    ProviderUnavailable,
    RateLimitError,
)
from ironspire.health.status import HealthState, HealthStatus
from ironspire.workspace.budgets import Budget, make_budget, period_bounds, state
from ironspire.workspace.fallback import FallbackRoute, failure_kind, health_skip, parse_routes


def test_failure_kinds() -> None:
    assert failure_kind(ProviderUnavailable("p", "connect refused")) == "unreachable"
    assert failure_kind(ProviderUnavailable("p", "boom", status=502)) == "5xx"
    assert failure_kind(RateLimitError("p", "slow down", status=429, raw='{"type": "rate_limit_exceeded"}')) == \
        "rate_limited"
    assert failure_kind(RateLimitError("p", "no money", status=429, raw='{"code": "insufficient_quota"}')) == "quota"
    assert failure_kind(BadRequest("p", "payment required", status=402)) == "quota"
    assert failure_kind(AuthenticationError("p", "bad key", status=401)) == "invalid_key"
    assert failure_kind(BadRequest("p", "bad field", status=400)) is None  # another route would be refused too
    assert failure_kind(ModelNotFound("p", "m")) is None


def test_health_rules_a_provider_out_until_its_reset_or_cooldown() -> None:
    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    limited = HealthStatus("p", HealthState.RATE_LIMITED, now, until=now + timedelta(seconds=30), detail="429")
    assert "rate-limited for 30 s" in (health_skip(limited, 30.0, now.timestamp()) or "")
    assert health_skip(limited, 30.0, (now + timedelta(seconds=31)).timestamp()) is None
    down = HealthStatus("p", HealthState.UNREACHABLE, now, detail="refused")
    assert "cooling down" in (health_skip(down, 30.0, now.timestamp() + 10) or "")
    assert health_skip(down, 30.0, now.timestamp() + 31) is None
    assert health_skip(HealthStatus("p", HealthState.DISABLED, now), 30.0) == "disabled"
    for fine in (HealthState.REACHABLE, HealthState.UNKNOWN, HealthState.INVALID_KEY):
        assert health_skip(HealthStatus("p", fine, now), 30.0, now.timestamp()) is None


def test_routes_are_provider_slash_model() -> None:
    assert parse_routes(" openai/gpt-4.1 , together/meta-llama/Llama-3-70b ,") == (
        FallbackRoute("openai", "gpt-4.1"), FallbackRoute("together", "meta-llama/Llama-3-70b"))
    for bad in ("openai", "/gpt", "openai/"):
        with pytest.raises(ConfigurationError, match="PROVIDER/MODEL"):
            parse_routes(bad)


def test_budget_periods_and_levels() -> None:
    at = datetime(2026, 2, 14, 15, 30, tzinfo=UTC).timestamp()
    assert period_bounds("day", at) == (datetime(2026, 2, 14, tzinfo=UTC).timestamp(),
                                        datetime(2026, 2, 15, tzinfo=UTC).timestamp())
    assert period_bounds("month", at) == (datetime(2026, 2, 1, tzinfo=UTC).timestamp(),
                                          datetime(2026, 3, 1, tzinfo=UTC).timestamp())
    budget = Budget(10.0, "month")
    rows = [("openai", 7.9, 0), ("ollama", 0.0, 5), ("groq", 0.0, 2)]  # ollama is not billed: its 5 are free
    now = state("workspace", None, budget, rows, billed=lambda p: p != "ollama", now=at)
    assert (now.spent, now.unknown_turns, now.level) == (7.9, 2, "ok")
    warned = state("workspace", None, budget, [("openai", 8.0, 0)], billed=lambda p: True, now=at)
    assert warned.level == "warning" and "80%" in (warned.warning() or "")
    spent = state("agent", "a", budget, [("openai", 10.0, 1)], billed=lambda p: True, now=at)
    assert spent.level == "exceeded"
    error = spent.error()
    text = str(error)
    assert "agent 'a'" in text and "2026-03-01 00:00 UTC" in text and "1 turn(s) of unknown cost" in text
    for bad in (0, -1, "lots", float("nan")):
        with pytest.raises(ConfigurationError, match="positive amount"):
            make_budget(bad)
    with pytest.raises(ConfigurationError, match="day or month"):
        make_budget(1, "week")
