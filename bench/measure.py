"""Timing loops. CPU time (``time.process_time``: every thread of this process, nothing of the
server's) is the figure to trust on a shared machine; wall-clock latencies are reported too but
move with whatever else the machine is doing.

Clients are interleaved: every round runs each client in turn, starting one further along the
list each time, so a burst of noise from the rest of the machine lands on all of them alike.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from bench import payloads
from bench.clients import Client, Result

Kind = Literal["send", "stream"]
T = TypeVar("T")


@dataclass
class Tally:
    """What one client did in one scenario, summed over rounds."""

    n: int = 0
    ok: int = 0
    cpu: float = 0.0
    wall: float = 0.0
    latencies: list[float] = field(default_factory=list)
    ttfc: list[float] = field(default_factory=list)
    segments: list[float] = field(default_factory=list)  # CPU seconds per request, one entry per round
    request_cpu: list[float] = field(default_factory=list)  # CPU seconds of each sequential request
    errors: list[str] = field(default_factory=list)

    def check(self, result: Result | BaseException) -> None:
        self.n += 1
        if isinstance(result, BaseException):
            if len(self.errors) < 3:
                self.errors.append(f"{type(result).__name__}: {str(result)[:200]}")
            return
        if result.complete:
            self.ok += 1
            if result.ttfc is not None:
                self.ttfc.append(result.ttfc)
        elif len(self.errors) < 3:
            got = f"{len(result.text)}/{len(payloads.TEXT)} chars, usage {result.usage}"
            self.errors.append(f"incomplete answer: {got}")

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"n": self.n, "ok": self.ok, "errors": self.errors, "ttfc_n": len(self.ttfc)}
        if self.n:
            # The headline CPU figure is the median over rounds of each round's mean: amortised costs
            # (GC, SQLite checkpoints) stay in, a round hit by a noisy neighbour drops out.
            out["cpu_us"] = median(self.segments) * 1e6 if self.segments else self.cpu / self.n * 1e6
            out["cpu_us_mean"] = self.cpu / self.n * 1e6
            out["cpu_us_rounds"] = [round(s * 1e6, 1) for s in self.segments]
            out["throughput"] = self.n / self.wall if self.wall else None
        if self.request_cpu:
            out["cpu_us_p50_request"] = pct(self.request_cpu, 50) * 1e6
        if self.latencies:
            out["p50_ms"] = pct(self.latencies, 50) * 1e3
            out["p99_ms"] = pct(self.latencies, 99) * 1e3
        if self.ttfc:
            out["ttfc_p50_ms"] = pct(self.ttfc, 50) * 1e3
            out["ttfc_p99_ms"] = pct(self.ttfc, 99) * 1e3
        return out


def pct(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile: p99 of 1,000 samples is the 10th worst, never interpolated."""
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def rotate(items: Sequence[T], r: int) -> list[T]:
    r %= len(items) or 1
    return [*items[r:], *items[:r]]


def _prepare(client: Client, n: int) -> None:
    prepare = getattr(client, "prepare", None)
    if prepare is not None:
        prepare(n)


async def _call(client: Client, kind: Kind, slot: int) -> Result | BaseException:
    try:
        return await (client.send(slot) if kind == "send" else client.stream(slot))
    except Exception as exc:  # counted as a failed request, reported in the table
        return exc


async def sequential(client: Client, kind: Kind, n: int, tally: Tally | None = None) -> Tally:
    tally = tally if tally is not None else Tally()
    _prepare(client, n)
    gc.collect()
    lat = []
    cpu = []
    results = []
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for _ in range(n):
        t, c = time.perf_counter(), time.process_time()
        results.append(await _call(client, kind, 0))
        cpu.append(time.process_time() - c)
        lat.append(time.perf_counter() - t)
    spent = time.process_time() - cpu0
    tally.cpu += spent
    tally.wall += time.perf_counter() - wall0
    tally.segments.append(spent / n)
    tally.latencies += lat
    tally.request_cpu += cpu
    for r in results:
        tally.check(r)
    return tally


async def concurrent(client: Client, kind: Kind, total: int, concurrency: int, tally: Tally | None = None) -> Tally:
    """``total`` requests kept ``concurrency`` in flight at once; slot i spreads over routes."""
    tally = tally if tally is not None else Tally()
    _prepare(client, total)
    gc.collect()
    remaining = total
    lat: list[float] = []
    results: list[Result | BaseException] = []

    async def worker(slot: int) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            t = time.perf_counter()
            results.append(await _call(client, kind, slot))
            lat.append(time.perf_counter() - t)

    wall0, cpu0 = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    spent = time.process_time() - cpu0
    tally.cpu += spent
    tally.segments.append(spent / total)
    tally.wall += time.perf_counter() - wall0
    tally.latencies += lat
    for r in results:
        tally.check(r)
    return tally
