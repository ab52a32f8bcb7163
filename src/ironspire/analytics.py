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
- Fallbacks (the Reliability tab): a turn answered by a fallback route is its successful request
  with ``attempt`` > 0; it counts for the route it answered on and for the one it was meant for
  (``fallback_from``), whichever one a provider filter names. The requests that failed before it
  are in the same turn (``turn``) at smaller attempts.
- Answered by a fallback (``fallback_turns``): the turns of the period a fallback route
  answered, the same count as the Reliability tab's ``fallbacks.turns`` for the same filters.
  A provider filter (``--provider``, or a provider group) keeps a turn when it names either side:
  the provider the turn was meant for (how often it needed a stand-in) or the one that answered
  it (how often it stood in). So with a provider filter it may exceed ``turns``, which counts
  only the requests made to that provider; an agent filter and the period apply as everywhere.
  The Turns tab's ``fallback`` outcome lists the requests behind it (outcome ``ok``,
  ``attempt`` > 0); there a provider filter names the provider that answered.

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
  (billed), ``api_cost_usd`` (API-equivalent; empty when unknown), ``latency_s``, ``session``,
  then where the request stands in its turn: ``turn`` (an id shared by the requests of one turn,
  its own route's and its fallbacks'), ``attempt`` (0 = the agent's own route, n = its n-th
  fallback route) and ``fallback_from`` (on a fallback route's request, the ``provider/model``
  the turn was meant for); all three empty on requests recorded before the ledger kept them.
- summary: the group column (``agent``, ``provider`` or ``model`` as ``provider/model``), then
  ``turns``, ``errors``, the five token columns above, ``total_tokens`` (as the KPI),
  ``cost_usd``, ``api_cost_usd``, ``avg_latency_s`` (successful requests; empty when none);
  most expensive group first.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

from ironspire.errors import ConfigurationError
from ironspire.paths import open_private

if TYPE_CHECKING:
    from ironspire.store.ledger import UsageFilter
    from ironspire.store.store import Store

GroupBy = Literal["agent", "provider", "model"]
PERIODS: dict[str, float] = {"1h": 3600, "6h": 6 * 3600, "24h": 86400, "7d": 7 * 86400,
                             "30d": 30 * 86400, "90d": 90 * 86400}
PERIOD_NAMES = ("session", *PERIODS, "all")
TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")
#: where a request stands in its turn (see the module docstring): appended to both raw exports
ROUTE_FIELDS = ("turn", "attempt", "fallback_from")
_REQUEST_FIELDS = ("at", "agent", "provider", "model", "outcome", "streamed", "input_tokens", "output_tokens",
                   "cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "cost_usd", "api_cost_usd",
                   "latency_s", "session")
TURN_FIELDS = (*_REQUEST_FIELDS, *ROUTE_FIELDS)
#: the panel's raw export: the request's fields, whether the counts were reported, estimated or
#: unknown, and the price the row was costed at (JSON; empty when none was known), then
#: ``ROUTE_FIELDS``
EXPORT_FIELDS = (*_REQUEST_FIELDS, "usage_state", "price", *ROUTE_FIELDS)
SUMMARY_FIELDS = ("turns", "errors", *TOKEN_FIELDS, "total_tokens", "cost_usd", "api_cost_usd", "avg_latency_s")
#: the panel's summary export: ``SUMMARY_FIELDS``, then how many successful turns had unknown or
#: estimated token counts and an unknown billed cost (left out of the sums before them)
SUMMARY_EXPORT_FIELDS = (*SUMMARY_FIELDS, "usage_unknown", "usage_estimated", "cost_unknown")


#: Provider groups of the filter bar: ids, or a prefix ending in ``*`` (every custom endpoint)
PROVIDER_GROUPS: dict[str, tuple[str, ...]] = {
    "claude": ("claude-api", "claude-sdk"), "openai": ("openai", "azure-openai"), "google": ("google",),
    "mistral": ("mistral",), "deepseek": ("deepseek",), "xai": ("xai",), "bedrock": ("bedrock",),
    "ollama": ("ollama",), "openai-compatible": ("groq", "together", "fireworks"), "custom": ("custom-*",),
}
GROUP_TITLES = {"claude": "Claude", "openai": "OpenAI", "google": "Google", "mistral": "Mistral",
                "deepseek": "DeepSeek", "xai": "xAI", "bedrock": "Bedrock", "ollama": "Ollama",
                "openai-compatible": "Other OpenAI-compatible", "custom": "Custom"}
#: chart bucket widths (s), the smallest that keeps a period within ``MAX_BUCKETS`` is used
#: (past a week a bucket is a whole number of days, so the store reads it from its daily sums)
BUCKET_WIDTHS = (60.0, 300.0, 900.0, 3600.0, 3 * 3600.0, 86400.0, 7 * 86400.0, 28 * 86400.0)
MAX_BUCKETS = 120


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

    def _filter(self, window: Window, agent: str | None, provider: str | None, group: str | None = None,
                outcome: str | None = None) -> UsageFilter:
        from ironspire.store.ledger import UsageFilter

        providers = None
        if group is not None:
            if group not in PROVIDER_GROUPS:
                raise ConfigurationError(f"unknown provider group {group!r}.",
                                         hint="Use " + ", ".join(PROVIDER_GROUPS) + ".")
            providers = PROVIDER_GROUPS[group]
        return UsageFilter(window.start, window.end, window.session, agent, provider, providers, outcome)

    # --- raw turns -------------------------------------------------------------------------

    def turns(
        self, period: str = "all", *, agent: str | None = None, provider: str | None = None,
        group: str | None = None, now: float | None = None,
    ) -> list[dict[str, Any]]:
        """Ledger rows in the period, oldest first, as plain dicts (``at`` is a Unix time;
        ``usage_state`` is "reported" for rows older than the column).

        ``now`` fixes the moment rolling periods end at (reports and tests that must be exact).
        """
        return list(self.iter_turns(period, agent=agent, provider=provider, group=group, now=now))

    def iter_turns(
        self, period: str = "all", *, agent: str | None = None, provider: str | None = None,
        group: str | None = None, now: float | None = None,
    ) -> Iterator[dict[str, Any]]:
        """``turns`` as a stream read from the database a chunk at a time (constant memory)."""
        f = self._filter(self.window(period, now=now), agent, provider, group)
        for r in self.store.ledger.iter_rows(f):
            yield _turn(r)

    def turns_page(
        self, period: str = "all", *, agent: str | None = None, provider: str | None = None,
        group: str | None = None, outcome: str | None = None, page: int = 1, per_page: int = 50,
        now: float | None = None,
    ) -> dict[str, Any]:
        """One page of the ledger, newest first, and the count of matching rows; ``outcome`` is
        ``ok``, ``error`` (every failure), ``fallback`` (the requests that answered their turn
        on a fallback route) or one outcome (``RateLimitError``, ``cancelled``)."""
        if page < 1 or not 1 <= per_page <= 500:
            raise ConfigurationError(f"page {page} of {per_page} rows is not a page.",
                                     hint="page counts from 1; per_page is 1 to 500.")
        f = self._filter(self.window(period, now=now), agent, provider, group, outcome)
        total, rows = self.store.ledger.turns_page(f, limit=per_page, offset=(page - 1) * per_page)
        page_rows = [{"id": r["id"], **_turn(r)} for r in rows]
        self._mark_fallbacks(page_rows)
        return {"total": total, "page": page, "per_page": per_page,
                "pages": max(1, -(-total // per_page)), "rows": page_rows}

    def _mark_fallbacks(self, rows: list[dict[str, Any]]) -> None:
        """Adds to each row of a page what the fallback routes had to do with it:
        ``answered_by_fallback`` (it answered its turn on a fallback route, standing in for
        ``fallback_from``), and on a failed request ``then``, the requests its turn made after it
        (``attempt``, ``provider``, ``model``, ``outcome``, in route order; empty when the turn
        ended with it) and ``fell_back_to``, the ``provider/model`` that answered the turn, if
        one did. One query for the page, over the fallback requests of its failed rows' turns."""
        failed = {r["turn"] for r in rows if r["outcome"] != "ok" and r["turn"] is not None}
        later = self.store.ledger.fallback_requests(failed)
        for r in rows:
            place = r["attempt"] or 0
            r["answered_by_fallback"] = r["outcome"] == "ok" and place > 0
            then = [a for a in later.get(r["turn"], ()) if a["attempt"] > place] if r["outcome"] != "ok" else []
            r["then"] = then
            r["fell_back_to"] = next((f"{a['provider']}/{a['model']}" for a in then if a["outcome"] == "ok"), None)

    # --- aggregates ------------------------------------------------------------------------

    def summary(
        self, by: GroupBy = "agent", period: str = "all", *, agent: str | None = None, provider: str | None = None,
        group: str | None = None, now: float | None = None,
    ) -> list[dict[str, Any]]:
        """One row per agent, provider or model (``provider/model``), most expensive first."""
        if by not in ("agent", "provider", "model"):
            raise ConfigurationError(f"cannot group by {by!r}; use agent, provider or model.")
        groups = self.store.ledger_totals(self._filter(self.window(period, now=now), agent, provider, group), by)
        out = [{by: g["key"], **_totals(g)} for g in groups]
        out.sort(key=lambda r: (-r["cost_usd"], -r["total_tokens"], r[by]))
        return out

    def kpis(
        self, period: str = "all", *, agent: str | None = None, provider: str | None = None,
        group: str | None = None, now: float | None = None,
    ) -> dict[str, Any]:
        now = time.time() if now is None else now
        window = self.window(period, now=now)
        (overall,) = self.store.ledger_totals(self._filter(window, agent, provider, group))
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
            "fallback_turns": sum(n for *_, n in self._fallback_answers(window, agent, provider, group)),
            # successful turns whose tokens are unknown (in no total) or estimated, and whose
            # billed cost is unknown (not in the spend): the totals say how much they leave out
            "usage_unknown_turns": totals["usage_unknown"],
            "usage_estimated_turns": totals["usage_estimated"],
            "cost_unknown_turns": totals["cost_unknown"],
            "turns_without_usage": totals["usage_unknown"],
        }

    # --- the panel's breakdowns ------------------------------------------------------------

    def span(self, period: str = "all", *, now: float | None = None, **filters: Any) -> tuple[float, float]:
        """The period's start and end as the charts draw it: a fixed period its whole length, an
        open one (``session``, ``all``) from its first request, each ending now at the latest."""
        now = time.time() if now is None else now
        window = self.window(period, now=now)
        end = now if window.end is None else min(window.end, now)
        if window.start is not None:
            return window.start, max(end, window.start)
        (overall,) = self.store.ledger_totals(self._filter(window, **filters))
        start = overall["first_at"] if overall["first_at"] is not None else end - 3600
        return float(start), end

    def series(
        self, period: str = "all", *, agent: str | None = None, provider: str | None = None,
        group: str | None = None, now: float | None = None,
    ) -> dict[str, Any]:
        """Spend per time bucket stacked by agent, and tokens per bucket (input incl. cache
        write, output, cache read, reasoning), over the period: ``width`` (s), ``buckets`` (their
        starts, every bucket of the span, empty ones included) and, per agent, spend per bucket."""
        now = time.time() if now is None else now
        start, end = self.span(period, now=now, agent=agent, provider=provider, group=group)
        width = bucket_width(end - start)
        f = self._filter(self.window(period, now=now), agent, provider, group)
        first = int(start // width) * width
        buckets = [first + i * width for i in range(int((end - first) // width) + 1)]
        index = {b: i for i, b in enumerate(buckets)}
        spend: dict[str, list[float]] = {}
        # per agent only the spend it is stacked by; the rest per bucket, summed by the database
        for bucket, name, cost in self.store.ledger.stacked(f, width, "cost_usd"):
            i = index.get(bucket)
            if i is None:
                continue
            spend.setdefault(name, [0.0] * len(buckets))[i] += round(float(cost), 10)
        names = ("input", "output", "cache_read", "reasoning")
        tokens = {n: [0] * len(buckets) for n in names}
        unknown_usage = [0] * len(buckets)
        unknown_cost = [0] * len(buckets)
        per_bucket = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens",
                      "usage_unknown", "cost_unknown")
        for row in self.store.ledger.series(f, width, sums=per_bucket):
            i = index.get(float(row["bucket"]))
            if i is None:
                continue
            unknown_cost[i] = int(row["cost_unknown"])
            tokens["input"][i] = int(row["input_tokens"]) + int(row["cache_write_tokens"])
            tokens["output"][i] = int(row["output_tokens"])
            tokens["cache_read"][i] = int(row["cache_read_tokens"])
            tokens["reasoning"][i] = int(row["reasoning_tokens"])
            unknown_usage[i] = int(row["usage_unknown"])
        order = sorted(spend, key=lambda a: (-sum(spend[a]), a))
        return {"start": start, "end": end, "width": width, "buckets": buckets,
                "spend": {a: spend[a] for a in order}, "cost_unknown": unknown_cost,
                "tokens": tokens, "usage_unknown": unknown_usage}

    def fleet(
        self, period: str = "all", *, agent: str | None = None, provider: str | None = None,
        group: str | None = None, now: float | None = None,
    ) -> list[dict[str, Any]]:
        """Per agent with requests in the period: its sums, its latest request's time and
        provider/model, and when it was created (``created_at``; the Fleet tab's uptime counts from it)."""
        f = self._filter(self.window(period, now=now), agent, provider, group)
        return [{"agent": r["agent"], "agent_id": int(r["agent_id"]), "deleted": bool(r["deleted_at"]),
                 "created_at": float(r["created_at"]),
                 "last_at": float(r["last_at"]), "provider": r["last_provider"], "model": r["last_model"],
                 **_totals(r)} for r in self.store.ledger.per_agent(f)]

    def breakdown(
        self, by: Literal["provider", "model"], period: str = "all", *, agent: str | None = None,
        provider: str | None = None, group: str | None = None, now: float | None = None,
    ) -> list[dict[str, Any]]:
        """Cost and tokens per provider or per model (``provider`` and ``model`` apart), with the
        API-equivalent cost beside the billed one; most expensive first."""
        f = self._filter(self.window(period, now=now), agent, provider, group)
        rows = [{"provider": r["provider"], **({"model": r["model"]} if by == "model" else {}), **_totals(r)}
                for r in self.store.ledger.by_key(f, by)]
        rows.sort(key=lambda r: (-r["cost_usd"], -r["api_cost_usd"], -r["total_tokens"], r["provider"],
                                 r.get("model", "")))
        return rows

    def reliability(
        self, period: str = "all", *, agent: str | None = None, provider: str | None = None,
        group: str | None = None, now: float | None = None,
    ) -> dict[str, Any]:
        """Per provider: requests, failures by class (rate-limited, auth, unavailable, other,
        cancelled) and their rates, latency p50/p95 of successful requests (nearest rank), the
        turns fallback routes answered for it (``fallback_for``: meant for it) and on it
        (``fallback_answered``); ``fallbacks``: the turns a fallback route answered, in all
        (``turns``) and per pair of routes (``routes``: ``from`` the route meant, ``to`` the one
        that answered, most turns first); and the health transitions of the period, oldest first.

        A provider the period's turns fell back from without ever reaching it (disabled, cooling
        down) is listed with no requests, so what it cost is still seen."""
        window = self.window(period, now=now)
        f = self._filter(window, agent, provider, group)
        providers: dict[str, dict[str, Any]] = {}

        def entry_for(pid: str) -> dict[str, Any]:
            return providers.setdefault(pid, {
                "provider": pid, "requests": 0, "ok": 0, "errors": dict.fromkeys(ERROR_CLASSES, 0),
                "fallback_for": 0, "fallback_answered": 0})

        for row in self.store.ledger.by_key(f, "outcome"):
            entry = entry_for(str(row["provider"]))
            count = int(row["turns"]) + int(row["errors"])
            entry["requests"] += count
            if row["outcome"] == "ok":
                entry["ok"] += count
            else:
                entry["errors"][error_class(str(row["outcome"]))] += count
        pairs: dict[tuple[str, str], int] = {}
        for meant, pid, model, to, on, n in self._fallback_answers(window, agent, provider, group):
            answered = f"{pid}/{model}"
            pairs[(meant, answered)] = pairs.get((meant, answered), 0) + n
            if to:
                entry_for(meant.partition("/")[0])["fallback_for"] += n
            if on:
                entry_for(pid)["fallback_answered"] += n
        fallbacks = {"turns": sum(pairs.values()),
                     "routes": [{"from": a, "to": b, "turns": n}
                                for (a, b), n in sorted(pairs.items(), key=lambda item: (-item[1], item[0]))]}
        latency = self.store.ledger.latency_percentiles(f)
        for pid, entry in providers.items():
            n = entry["requests"]
            entry["error_rate"] = {k: (v / n if n else 0.0) for k, v in entry["errors"].items()}
            entry["failure_rate"] = (n - entry["ok"]) / n if n else 0.0
            entry["p50_s"] = latency.get(pid, {}).get(0.5)
            entry["p95_s"] = latency.get(pid, {}).get(0.95)
        return {"providers": [providers[p] for p in sorted(providers)], "fallbacks": fallbacks,
                "transitions": self.store.ledger.transitions(f)}

    def _fallback_answers(self, window: Window, agent: str | None, provider: str | None,
                          group: str | None) -> Iterator[tuple[str, str, str, bool, bool, int]]:
        """The turns a fallback route answered, per pair of routes the filters keep: (route
        meant, provider and model that answered, whether the filters name the meant one's
        provider, whether they name the answering one, turns). The one place that decides which
        side a provider filter counts, so the KPI and the Reliability tab cannot differ."""
        f = self._filter(window, agent, provider, group)
        for meant, pid, model, n in self.store.ledger.fallback_answers(f):
            meant = meant or "?"  # a fallback row always names it; "?" if one came from elsewhere without
            to = _selected(meant.partition("/")[0], f.provider, f.providers)
            on = _selected(pid, f.provider, f.providers)
            if on or to:
                yield meant, pid, model, to, on, n

    # --- CSV -------------------------------------------------------------------------------

    def turns_csv(self, out: Path | IO[str], period: str = "all", **filters: Any) -> int:
        """Writes the raw turns (columns: ``TURN_FIELDS``, see the module docstring), streamed
        from the database: memory stays the same for ten rows or a million."""
        if isinstance(out, Path):
            with open_private(out, newline="", encoding="utf-8") as fh:
                return self.turns_csv(fh, period, **filters)
        chunks = 0
        for chunk in self.iter_turns_csv(period, **filters):
            out.write(chunk)
            chunks += 1
        return chunks - 1  # the first chunk is the header

    def iter_turns_csv(self, period: str = "all", *, fields: tuple[str, ...] = TURN_FIELDS,
                       **filters: Any) -> Iterator[str]:
        """The raw-turns CSV as text: the header, then one line per row (a web response streams
        it). Unknown counts and unknown costs are empty cells, never 0."""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in self.iter_turns(period, **filters):
            yield _drain(buffer)
            row["at"] = datetime.fromtimestamp(row["at"], UTC).isoformat(timespec="seconds")
            if row["usage_state"] == "unknown":
                for f in TOKEN_FIELDS:
                    row[f] = ""
            writer.writerow(row)
        yield _drain(buffer)

    def summary_csv(self, out: Path | IO[str], by: GroupBy = "agent", period: str = "all", *,
                    fields: tuple[str, ...] = SUMMARY_FIELDS, **filters: Any) -> int:
        """Writes the summary (columns: the group, then ``fields``: ``SUMMARY_FIELDS`` or
        ``SUMMARY_EXPORT_FIELDS``)."""
        rows = self.summary(by, period, **filters)
        fields = (by, *fields)
        _write_csv(out, fields, rows)
        return len(rows)


#: failure classes of the Reliability tab, from the ledger's outcome (the error's class name)
ERROR_CLASSES = ("rate_limited", "auth", "unavailable", "other", "cancelled")
_CLASS_OF = {"RateLimitError": "rate_limited", "AuthenticationError": "auth", "CredentialsMissing": "auth",
             "ProviderUnavailable": "unavailable", "NoConnection": "unavailable", "cancelled": "cancelled"}


def error_class(outcome: str) -> str:
    return _CLASS_OF.get(outcome, "other")


def _selected(pid: str, provider: str | None, providers: tuple[str, ...] | None) -> bool:
    """Whether a filter's provider and provider group (ids, or prefixes ending in ``*``) let
    ``pid`` through, as the store's filter would."""
    if provider is not None and pid != provider:
        return False
    return providers is None or any(pid.startswith(p[:-1]) if p.endswith("*") else pid == p for p in providers)


def bucket_width(span: float) -> float:
    """The chart bucket for a span of ``span`` seconds: the smallest of ``BUCKET_WIDTHS`` that
    keeps it within ``MAX_BUCKETS`` buckets."""
    for width in BUCKET_WIDTHS:
        if span / width <= MAX_BUCKETS:
            return width
    return BUCKET_WIDTHS[-1]


def _turn(r: dict[str, Any]) -> dict[str, Any]:
    row = {f: r[f] for f in EXPORT_FIELDS}
    row["streamed"] = bool(row["streamed"])
    row["usage_state"] = row["usage_state"] or "reported"
    return row


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text


def _totals(sums: dict[str, Any]) -> dict[str, Any]:
    """A group's figures from the database's sums (see ``Store.ledger_totals``)."""
    totals: dict[str, Any] = {"turns": int(sums["turns"]), "errors": int(sums["errors"])}
    for f in TOKEN_FIELDS:
        totals[f] = int(sums[f])
    totals["total_tokens"] = sum(totals[f] for f in TOKEN_FIELDS if f != "reasoning_tokens")
    for f in ("usage_unknown", "usage_estimated", "cost_unknown", "api_cost_unknown"):
        totals[f] = int(sums[f])
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
