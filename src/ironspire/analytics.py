"""Usage and cost over the ledger: totals per agent, provider and model, KPIs, CSV.

Every request leaves one ledger row (see workspace/agent.py), failed ones included, so the
numbers here are what was really sent. Analytics reads the store (``ironspire.store``), which
aggregates in the database (GROUP BY); it never needs a Workspace. The KPIs of the Analytics panel
(docs: interface/analytics), as computed here over the rows of the period:

- Total Spend (``total_spend_usd``), "cumulative cost for the selected period": sum of billed
  cost. Unbilled providers (Ollama, a Claude subscription) count 0; what the same tokens
  would have cost on the API is ``api_equivalent_usd``.
- Active Agents (``active_agents``): distinct agents that made a request in the period. The
  panel's wording is "agents currently running"; a period summary read from the ledger cannot
  see processes, so ``running_agents`` reports, separately, the agents of this workspace with a
  turn in flight right now (0 in a CLI call that is not itself running a turn).
- Total Tokens (``total_tokens``), "combined input and output tokens": input + output, where
  input includes cached input (cache read and cache write). Reasoning tokens are already part
  of output, so they are not added again.
- Cache Hit Rate (``cache_hit_rate``), "share of input tokens served from cache": cache-read
  tokens / all input tokens (uncached + cache read + cache write), a fraction in [0, 1]
  (0 when there was no input); the CLI shows it as a percentage.
- Burn Rate (``burn_rate_usd_per_hour``), "spend rate in USD per hour": spend / length of the
  period in hours. A fixed period (``1h`` ... ``90d``, or a range) counts its whole length;
  ``session`` counts from the session's start, ``all`` from the first request; either ends
  now. A period never counts as shorter than one minute.
- Turns (``turns``): successful requests (each a completed turn in some agent's history);
  ``errors`` counts the failed and cancelled ones, which changed no history.

Periods: ``session`` (this workspace's session; a fresh process that has made no request yet,
such as a CLI call, reports the latest recorded session), ``1h 6h 24h 7d 30d 90d`` (ending
now), ``all``, or a custom range ``START..END``: ISO dates or date-times, UTC unless they carry
an offset; START is inclusive; END is exclusive, except that a bare date END includes that whole
day (``2026-11-01..2026-11-30`` is all of November); either side may be left out
(``2026-11-01..``, ``..2026-11-01``).

CSV (``turns_csv``: one row per request; ``summary_csv``: one row per group), UTF-8, header
first, comma separated:

- raw turns, in this order: ``at`` (ISO 8601 UTC, seconds), ``agent``, ``provider``, ``model``,
  ``outcome`` (``ok``, ``cancelled``, or the error's class name such as ``RateLimitError``),
  ``streamed`` (``True``/``False``), ``input_tokens`` (uncached), ``output_tokens`` (reasoning
  included), ``cache_read_tokens``, ``cache_write_tokens``, ``reasoning_tokens``, ``cost_usd``
  (billed), ``api_cost_usd`` (API-equivalent; empty when unknown), ``latency_s``, ``session``.
- summary: the group column (``agent``, ``provider`` or ``model`` as ``provider/model``), then
  ``turns``, ``errors``, the five token columns above, ``total_tokens`` (as the KPI),
  ``cost_usd``, ``api_cost_usd``, ``avg_latency_s`` (successful requests; empty when none);
  most expensive group first.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

from ironspire.errors import ConfigurationError
from ironspire.paths import open_private

if TYPE_CHECKING:
    from ironspire.store.store import Store, UsageFilter

GroupBy = Literal["agent", "provider", "model"]
PERIODS: dict[str, float] = {"1h": 3600, "6h": 6 * 3600, "24h": 86400, "7d": 7 * 86400,
                             "30d": 30 * 86400, "90d": 90 * 86400}
PERIOD_NAMES = ("session", *PERIODS, "all")
TURN_FIELDS = ("at", "agent", "provider", "model", "outcome", "streamed", "input_tokens", "output_tokens",
               "cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "cost_usd", "api_cost_usd",
               "latency_s", "session")
TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")


@dataclass(frozen=True, slots=True)
class Window:
    label: str
    start: float | None
    end: float | None
    session: str | None = None


def _parse_time(text: str, *, end: bool = False) -> float:
    """A Unix time; a bare date as the END of a range means the end of that day."""
    text = text.strip()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigurationError(
            f"{text!r} is not an ISO date or time (e.g. 2026-11-01 or 2026-11-01T09:00)."
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if end and _is_date(text):
        moment += timedelta(days=1)
    return moment.timestamp()


def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


class Analytics:
    """Over ``store``'s ledger. ``session_id`` / ``session_started`` name the calling process's
    session (the ``session`` period); ``running_agents(agent=, provider=)`` counts the turns in
    flight in that process (the ``running_agents`` KPI; 0 without it)."""

    def __init__(
        self, store: Store, *, session_id: str, session_started: float,
        running_agents: Callable[..., int] | None = None,
    ) -> None:
        self.store, self.session_id, self.session_started = store, session_id, session_started
        self._running = running_agents

    # --- periods ---------------------------------------------------------------------------

    def window(self, period: str = "all", *, now: float | None = None) -> Window:
        now = time.time() if now is None else now
        if period == "all":
            return Window("all", None, None)
        if period in PERIODS:
            return Window(period, now - PERIODS[period], None)
        if period == "session":
            return Window("session", None, None, self._session())
        if ".." in period:
            start_text, _, end_text = period.partition("..")
            start = _parse_time(start_text) if start_text.strip() else None
            end = _parse_time(end_text, end=True) if end_text.strip() else None
            if start is not None and end is not None and end <= start:
                raise ConfigurationError(f"the range {period!r} ends before it starts.")
            return Window(period, start, end)
        raise ConfigurationError(
            f"unknown period {period!r}.", hint="Use " + ", ".join(PERIOD_NAMES) + ", or START..END (ISO dates)."
        )

    def _session(self) -> str:
        if self.store.has_session(self.session_id):
            return self.session_id
        return self.store.latest_session() or self.session_id

    def _filter(self, window: Window, agent: str | None, provider: str | None) -> UsageFilter:
        from ironspire.store.store import UsageFilter

        return UsageFilter(window.start, window.end, window.session, agent, provider)

    # --- raw turns -------------------------------------------------------------------------

    def turns(
        self, period: str = "all", *, agent: str | None = None, provider: str | None = None,
        now: float | None = None,
    ) -> list[dict[str, Any]]:
        """Ledger rows in the period, oldest first, as plain dicts (``at`` is a Unix time).

        ``now`` fixes the moment rolling periods end at (reports and tests that must be exact).
        """
        rows = self.store.usage_rows(self._filter(self.window(period, now=now), agent, provider))
        # usage_state rides beside the documented columns: "unknown" marks a row whose zeros mean
        # the provider sent no counts (rows older than the column read as reported)
        return [{**{f: r[f] for f in TURN_FIELDS}, "usage_state": r["usage_state"] or "reported"} for r in rows]

    # --- aggregates ------------------------------------------------------------------------

    def summary(
        self, by: GroupBy = "agent", period: str = "all", *, agent: str | None = None, provider: str | None = None,
        now: float | None = None,
    ) -> list[dict[str, Any]]:
        """One row per agent, provider or model (``provider/model``), most expensive first."""
        if by not in ("agent", "provider", "model"):
            raise ConfigurationError(f"cannot group by {by!r}; use agent, provider or model.")
        groups = self.store.usage_totals(self._filter(self.window(period, now=now), agent, provider), by)
        out = [{by: g["key"], **_totals(g)} for g in groups]
        out.sort(key=lambda r: (-r["cost_usd"], -r["total_tokens"], r[by]))
        return out

    def kpis(
        self, period: str = "all", *, agent: str | None = None, provider: str | None = None,
        now: float | None = None,
    ) -> dict[str, Any]:
        now = time.time() if now is None else now
        window = self.window(period, now=now)
        (overall,) = self.store.usage_totals(self._filter(window, agent, provider))
        totals = _totals(overall)
        if window.start is not None:
            start = window.start
        elif overall["first_at"] is not None:
            start = overall["first_at"]
        else:
            start = now
        if period == "session" and window.session == self.session_id:
            start = min(start, self.session_started)
        end = now if window.end is None else min(window.end, now)
        hours = max(end - start, 60.0) / 3600
        prompt = totals["input_tokens"] + totals["cache_read_tokens"] + totals["cache_write_tokens"]
        running = self._running(agent=agent, provider=provider) if self._running is not None else 0
        return {
            "period": window.label,
            "total_spend_usd": totals["cost_usd"],
            "api_equivalent_usd": totals["api_cost_usd"],
            "active_agents": overall["agents"],
            "running_agents": running,
            "total_tokens": totals["total_tokens"],
            "cache_hit_rate": (totals["cache_read_tokens"] / prompt) if prompt else 0.0,
            "burn_rate_usd_per_hour": totals["cost_usd"] / hours,
            "turns": totals["turns"],
            "errors": totals["errors"],
            # answered turns whose provider reported no usage: their tokens and cost are not in the totals
            "turns_without_usage": int(overall["unknown_usage"]),
        }

    # --- CSV -------------------------------------------------------------------------------

    def turns_csv(self, out: Path | IO[str], period: str = "all", **filters: Any) -> int:
        """Writes the raw turns (columns: ``TURN_FIELDS``, see the module docstring)."""
        rows = self.turns(period, **filters)
        for r in rows:
            r["at"] = datetime.fromtimestamp(r["at"], UTC).isoformat(timespec="seconds")
        _write_csv(out, TURN_FIELDS, rows)
        return len(rows)

    def summary_csv(self, out: Path | IO[str], by: GroupBy = "agent", period: str = "all", **filters: Any) -> int:
        """Writes the summary (columns: the group, then ``SUMMARY_FIELDS``)."""
        rows = self.summary(by, period, **filters)
        fields = (by, *SUMMARY_FIELDS)
        _write_csv(out, fields, rows)
        return len(rows)


SUMMARY_FIELDS = ("turns", "errors", *TOKEN_FIELDS, "total_tokens", "cost_usd", "api_cost_usd", "avg_latency_s")


def _totals(sums: dict[str, Any]) -> dict[str, Any]:
    """A group's figures from the database's sums (see ``Store.usage_totals``)."""
    totals: dict[str, Any] = {"turns": int(sums["turns"]), "errors": int(sums["errors"])}
    for f in TOKEN_FIELDS:
        totals[f] = int(sums[f])
    totals["total_tokens"] = sum(totals[f] for f in TOKEN_FIELDS if f != "reasoning_tokens")
    totals["cost_usd"] = round(float(sums["cost_usd"]), 10)
    totals["api_cost_usd"] = round(float(sums["api_cost_usd"]), 10)
    latency = sums["avg_latency_s"]
    totals["avg_latency_s"] = round(float(latency), 4) if latency is not None and totals["turns"] else None
    return totals


def _write_csv(out: Path | IO[str], fields: Iterable[str], rows: list[dict[str, Any]]) -> None:
    fields = list(fields)
    if isinstance(out, Path):
        with open_private(out, newline="", encoding="utf-8") as fh:
            _write_csv(fh, fields, rows)
        return
    writer = csv.DictWriter(out, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)


def since(hours: float) -> float:
    """A Unix time ``hours`` ago (for callers building custom ranges)."""
    return (datetime.now(UTC) - timedelta(hours=hours)).timestamp()
