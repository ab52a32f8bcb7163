"""Moving a workspace between databases (``ironspire db copy --from URL --to URL``), SQLite to
PostgreSQL and back, with proof that nothing was lost: per-table row counts and checksums,
computed the same way on both sides.

The checksum of a table is SHA-256 over its rows in primary-key order, each row reduced to a
canonical form that does not depend on the engine: a JSON body by its parsed value (jsonb keeps
no key order or spacing), a time to the microsecond (PostgreSQL's timestamptz resolution, finer
than any float clock this product records), a flag as a boolean. Row ids are kept, so history
order and the ledger's references survive the move.

The copy runs in one transaction on the target, and the target's checksums are compared before
it commits: a copy that would differ is rolled back and the target is left as it was.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Table, delete, func, select, text
from sqlalchemy.engine import URL, Connection, Engine

from ironspire.errors import ConfigurationError
from ironspire.store import engines, schema
from ironspire.store.types import JSONText, Timestamp

#: every table, parents before children (the order rows are written in, and deleted in reverse)
TABLES: tuple[Table, ...] = (
    schema.settings, schema.providers, schema.provider_settings, schema.custom_endpoints, schema.agents,
    schema.messages, schema.usage, schema.revision, schema.provider_health, schema.usage_daily, schema.usage_rollup,
)
BATCH = 5000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class TableSum:
    rows: int
    sha256: str


def _microseconds(value: Any) -> int | None:
    """A time as whole microseconds, rounded exactly as the driver rounds it into timestamptz."""
    if value is None:
        return None
    moment = datetime.fromtimestamp(float(value), UTC)
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _canonical(table: Table) -> Callable[[Any], list[Any]]:
    converters: list[Callable[[Any], Any]] = []
    for column in table.columns:
        kind = column.type
        if isinstance(kind, JSONText):
            converters.append(lambda v: None if v is None else json.loads(v))
        elif isinstance(kind, Timestamp):
            converters.append(_microseconds)
        elif column.type.python_type is bool:
            converters.append(lambda v: None if v is None else bool(v))
        else:
            converters.append(lambda v: v)

    def row(values: Any) -> list[Any]:
        return [convert(v) for convert, v in zip(converters, values, strict=True)]

    return row


def _ordered(table: Table) -> Any:
    return select(table).order_by(*table.primary_key.columns)


def _rows(conn: Connection, table: Table) -> Iterator[Any]:
    result = conn.execution_options(yield_per=BATCH).execute(_ordered(table))
    yield from result


def table_sums(conn: Connection) -> dict[str, TableSum]:
    """Row count and checksum of every table, over one connection (one consistent read when the
    caller holds a transaction)."""
    sums: dict[str, TableSum] = {}
    for table in TABLES:
        canonical = _canonical(table)
        digest = hashlib.sha256()
        count = 0
        for row in _rows(conn, table):
            digest.update(json.dumps(canonical(row), separators=(",", ":"), sort_keys=True, default=str).encode())
            digest.update(b"\n")
            count += 1
        sums[table.name] = TableSum(count, digest.hexdigest())
    return sums


def checksums(url: URL) -> dict[str, TableSum]:
    engine = engines.open_engine(url)
    try:
        with engine.begin() as conn:
            return table_sums(conn)
    finally:
        engine.dispose()


def _target_engine(url: URL) -> Engine:
    """The target, at this Ironspire's schema: copying into a database is an explicit step, so
    an un-migrated PostgreSQL target is migrated here (as `db upgrade` would)."""
    engines.upgrade(url)
    return engines.open_engine(url)


def _holds_a_workspace(conn: Connection) -> bool:
    for table in (schema.agents, schema.messages, schema.usage, schema.settings, schema.custom_endpoints):
        if conn.execute(select(func.count()).select_from(table)).scalar_one():
            return True
    return False


def copy(source: URL, target: URL, *, replace: bool = False) -> dict[str, TableSum]:
    """Copies every row of ``source`` into ``target``; returns the (equal) checksums.

    The target must hold no workspace yet, unless ``replace``: then its rows are deleted first,
    in the same transaction as the copy.
    """
    if engines.shown(source) == engines.shown(target):
        raise ConfigurationError("the source and the target of the copy are the same database.")
    source_engine = engines.open_engine(source)
    try:
        target_engine = _target_engine(target)
        try:
            with source_engine.begin() as src, target_engine.begin() as dst:
                expected = table_sums(src)
                if _holds_a_workspace(dst) and not replace:
                    raise ConfigurationError(
                        f"the target {engines.shown(target)} already holds a workspace; nothing was copied.",
                        hint="Copy into an empty database, or pass --replace to overwrite it.",
                    )
                for table in reversed(TABLES):
                    dst.execute(delete(table))
                if engines.is_postgres(target):
                    _prepare_ledger(src, dst)
                for table in TABLES:
                    _copy_table(src, dst, table)
                if engines.is_postgres(target):
                    _advance_sequences(dst)
                copied = table_sums(dst)
                if copied != expected:
                    differ = sorted(name for name in expected if expected[name] != copied.get(name))
                    raise ConfigurationError(
                        f"the copy differs from the source in {', '.join(differ)}; it was rolled back.",
                        hint="Report this with both databases' engines and Ironspire version.",
                    )
            return copied
        finally:
            target_engine.dispose()
    finally:
        source_engine.dispose()


def _copy_table(src: Connection, dst: Connection, table: Table) -> None:
    batch: list[dict[str, Any]] = []
    for row in _rows(src, table):
        batch.append(dict(row._mapping))
        if len(batch) >= BATCH:
            dst.execute(table.insert(), batch)
            batch = []
    if batch:
        dst.execute(table.insert(), batch)


def _prepare_ledger(src: Connection, dst: Connection) -> None:
    """Monthly partitions for every month the source's ledger covers, before its rows arrive."""
    from ironspire.store import postgres

    first, last = src.execute(select(func.min(schema.usage.c.at), func.max(schema.usage.c.at))).one()
    if first is not None:
        postgres.ensure_partitions(dst, float(first), float(last))


def _advance_sequences(dst: Connection) -> None:
    """PostgreSQL hands out ids from sequences, which rows copied with their ids do not move."""
    for table in (schema.agents, schema.messages, schema.usage):
        dst.execute(text(
            f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
            f"COALESCE((SELECT max(id) FROM {table.name}), 0) + 1, false)"
        ))
