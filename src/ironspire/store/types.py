"""Column types that read and write the same Python values on every engine.

The application sees a message body as JSON text and a time as a Unix float on SQLite and
PostgreSQL alike. On PostgreSQL the columns are ``jsonb`` (queryable, validated on write) and
``timestamptz`` (readable in ``psql``, partitionable by month); the conversion happens here, at
the driver boundary, so no caller branches on the engine.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, Float, Integer, Text, cast
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeDecorator, TypeEngine

#: row ids: 64-bit on PostgreSQL (a team's ledger outgrows 2**31), SQLite's rowid alias elsewhere
RowId = BigInteger().with_variant(Integer(), "sqlite")


class Timestamp(TypeDecorator[float]):
    """A Unix time in seconds: ``timestamptz`` on PostgreSQL (microseconds), REAL elsewhere."""

    impl = Float
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(TIMESTAMP(timezone=True))
        return dialect.type_descriptor(Float())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None or dialect.name != "postgresql":
            return value
        return datetime.fromtimestamp(float(value), UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> float | None:
        if value is None:
            return None
        if isinstance(value, datetime):
            return value.timestamp()
        return float(value)


class JSONText(TypeDecorator[str]):
    """A JSON document handed over as text: ``jsonb`` on PostgreSQL, TEXT elsewhere.

    Reads come back as PostgreSQL's own text rendering of the document (a cast in the SELECT,
    so the driver does not build Python objects only to have them dumped again); key order and
    spacing may differ from what was written, the JSON value never does.
    """

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(Text())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None or dialect.name != "postgresql":
            return value
        return json.loads(value) if isinstance(value, str) else value

    def column_expression(self, column: ColumnElement[Any]) -> ColumnElement[Any]:
        return cast(column, Text)  # a no-op on SQLite's TEXT; jsonb -> text on PostgreSQL
