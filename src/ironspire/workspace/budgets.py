"""Spending budgets: optional USD limits per agent and for the workspace, per UTC day or month.

Spend is the billed cost in the ledger since the period began (``cost_usd``: local servers and
subscriptions charge nothing). A successful request whose cost is unknown (the model has no
price) is never counted as $0: it is counted apart (``unknown_turns``) and shown as such.

At 80% a budget is in ``warning``; once the spend reaches the limit every turn under it is
refused before anything is sent, with a ``BudgetExceeded`` naming the budget, the spend and the
reset. Turns already in flight are not yet in the ledger, so within a process a ``Gate`` per
budget holds a new turn back while the turns in flight could bring the spend to the limit
(projected at the dearest turn seen under that budget, or one at a time until a cost is seen),
and decides once they are committed: a fleet refuses exactly the turns that one-at-a-time
sending would refuse. Across processes each turn decides on the spend committed when it starts.
"""

from __future__ import annotations

import asyncio
import calendar
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeAlias

from ironspire.errors import BudgetExceeded, ConfigurationError, usd

Period: TypeAlias = Literal["day", "month"]
PERIODS: tuple[Period, ...] = ("day", "month")
WARN_AT = 0.8


@dataclass(frozen=True, slots=True)
class Budget:
    usd: float
    period: Period = "month"

    def to_stored(self) -> dict[str, Any]:
        return {"usd": self.usd, "period": self.period}


def make_budget(usd: float | str, period: str = "month") -> Budget:
    try:
        value = float(usd)
        if not value > 0 or value != value or value == float("inf"):
            raise ValueError
    except (TypeError, ValueError):
        raise ConfigurationError(f"a budget is a positive amount of USD, not {usd!r}.") from None
    if period not in PERIODS:
        raise ConfigurationError(f"a budget's period is day or month, not {period!r}.")
    return Budget(value, period)


def from_stored(value: Any) -> Budget | None:
    if not isinstance(value, dict):
        return None
    return make_budget(value["usd"], str(value.get("period", "month")))


def period_bounds(period: Period, now: float | None = None) -> tuple[float, float]:
    """The current period's start and end (the reset) as Unix times, in UTC."""
    at = datetime.fromtimestamp(time.time() if now is None else now, UTC)
    if period == "day":
        start = at.replace(hour=0, minute=0, second=0, microsecond=0)
        return start.timestamp(), start.timestamp() + 86_400
    start = at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    days = calendar.monthrange(start.year, start.month)[1]
    return start.timestamp(), start.timestamp() + days * 86_400


@dataclass(frozen=True, slots=True)
class BudgetState:
    """One budget now: what the views show and what a turn is admitted against."""

    scope: Literal["agent", "workspace"]
    name: str | None
    budget: Budget
    spent: float
    unknown_turns: int
    started_at: float
    resets_at: float

    @property
    def fraction(self) -> float:
        return self.spent / self.budget.usd

    @property
    def level(self) -> Literal["ok", "warning", "exceeded"]:
        if self.spent >= self.budget.usd:
            return "exceeded"
        return "warning" if self.fraction >= WARN_AT else "ok"

    def error(self) -> BudgetExceeded:
        return BudgetExceeded(self.scope, self.name, self.budget.usd, self.budget.period, self.spent,
                              self.resets_at, self.unknown_turns)

    def warning(self) -> str | None:
        """The one-line warning front ends print at 80% (None below it)."""
        if self.level == "ok":
            return None
        which = f"agent {self.name}" if self.scope == "agent" else "workspace"
        unknown = f" + {self.unknown_turns} turn(s) of unknown cost" if self.unknown_turns else ""
        return (f"{which} budget: {usd(self.spent)} of {usd(self.budget.usd)} this {self.budget.period}{unknown} "
                f"({self.fraction:.0%})")


def state(scope: Literal["agent", "workspace"], name: str | None, budget: Budget,
          rows: list[tuple[str, float, int]], billed: Callable[[str], bool], now: float | None = None
          ) -> BudgetState:
    """``rows``: the store's ``spend`` since the period began (provider, cost, unknown-cost turns);
    only billed providers' unknown turns are unknown money."""
    start, reset = period_bounds(budget.period, now)
    spent = sum(cost for _, cost, _ in rows)
    unknown = sum(n for pid, _, n in rows if billed(pid))
    return BudgetState(scope, name, budget, spent, unknown, start, reset)


class Gate:
    """Admission for the turns of one budget in this process (see the module docstring)."""

    def __init__(self) -> None:
        self._cond = asyncio.Condition()
        self.in_flight = 0
        self.projected: float | None = None  # the dearest turn seen under this budget
        self._wakers: set[asyncio.Task[None]] = set()

    async def admit(self, read: Callable[[], Awaitable[BudgetState]]) -> None:
        async with self._cond:
            while True:
                # counted before the read: a turn that commits during it is then counted twice
                # (this turn waits and looks again), never missed
                in_flight = self.in_flight
                current = await read()
                if current.spent >= current.budget.usd:
                    raise current.error()
                if in_flight == 0:
                    break
                if self.projected is not None and current.spent + in_flight * self.projected < current.budget.usd:
                    break
                await self._cond.wait()
            self.in_flight += 1

    def release(self, cost: float | None) -> None:
        """The admitted turn is over (committed, failed or cancelled); ``cost``: what it was
        billed (None when unknown or nothing was sent). Synchronous, so a cancelled turn's
        ``finally`` cannot skip it; the waiting turns are woken by a task of their own."""
        self.in_flight -= 1
        if cost is not None and cost > 0:
            self.projected = cost if self.projected is None else max(self.projected, cost)
        task = asyncio.get_running_loop().create_task(self._wake())
        self._wakers.add(task)
        task.add_done_callback(self._wakers.discard)

    async def _wake(self) -> None:
        async with self._cond:
            self._cond.notify_all()
