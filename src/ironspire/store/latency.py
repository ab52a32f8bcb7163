"""Latency buckets: what lets the Reliability tab rank a quarter of a million latencies exactly
without walking them.

``usage_daily_latency`` counts the successful requests per UTC day, provider and bucket. A
bucket is a slice of an octave: ``SUB`` equal slices of ``[2**e, 2**(e+1))`` for ``e`` from
``E_MIN`` to ``E_MAX - 1``, plus one bucket below ``2**E_MIN`` (1 ms) and one at or above
``2**E_MAX`` (68 min). Its bounds are exact binary fractions, and the bucket of a latency is
computed with divisions by powers of two and a floor, which are exact in IEEE doubles: so
``bucket(x) == b`` holds exactly when ``lower(b) <= x < upper(b)``, in Python, SQLite and
PostgreSQL alike. The counts find the bucket that holds a rank; one walk of that bucket's slice
of ``ix_usage_latency`` then reads the exact value. Nothing is approximated.
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import Integer, case, cast, func
from sqlalchemy.sql.expression import ColumnElement

#: slices per octave, and the octaves covered (2**E_MIN s .. 2**E_MAX s)
SUB = 16
E_MIN = -10
E_MAX = 12
#: the bucket of everything at or above 2**E_MAX
LAST = 1 + (E_MAX - E_MIN) * SUB


def bucket(x: float) -> int:
    """The bucket of latency ``x`` (s), exactly as ``bucket_sql`` computes it."""
    if not x >= 2.0 ** E_MIN:  # NaN and negatives too
        return 0
    if x >= 2.0 ** E_MAX:
        return LAST
    e = math.frexp(x)[1] - 1  # 2**e <= x < 2**(e+1)
    return 1 + (e - E_MIN) * SUB + math.floor((x / 2.0 ** e - 1.0) * SUB)


def bounds(b: int) -> tuple[float | None, float | None]:
    """``lower(b) <= x < upper(b)`` exactly for the latencies of bucket ``b`` (None: unbounded)."""
    if b <= 0:
        return None, 2.0 ** E_MIN
    if b >= LAST:
        return 2.0 ** E_MAX, None
    e, m = E_MIN + (b - 1) // SUB, (b - 1) % SUB
    return 2.0 ** e * (1 + m / SUB), 2.0 ** e * (1 + (m + 1) / SUB)


def bucket_sql(x: ColumnElement[Any], postgres: bool) -> ColumnElement[Any]:
    """``bucket`` in SQL: one CASE branch per octave (the floor of a non-negative number is a
    truncating cast on SQLite, ``floor`` on PostgreSQL, whose integer cast rounds)."""

    def floor(v: ColumnElement[Any]) -> ColumnElement[Any]:
        return cast(func.floor(v), Integer) if postgres else cast(v, Integer)

    whens: list[tuple[ColumnElement[bool], Any]] = [(x < 2.0 ** E_MIN, 0)]
    for e in range(E_MIN, E_MAX):
        slice_ = floor((x * 2.0 ** -e - 1.0) * SUB)
        whens.append((x < 2.0 ** (e + 1), 1 + (e - E_MIN) * SUB + slice_))
    return case(*whens, else_=LAST)
