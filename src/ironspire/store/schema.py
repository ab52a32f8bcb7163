"""The schema, as SQLAlchemy Core tables: the one definition that migrations, the store's queries
and the turn path's precompiled SQL (``store/sql.py``) are checked against.

Secrets never reach the database; the credential store keeps them.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from ironspire.store.sqlite import DB_NAME  # noqa: F401  (re-exported: the file name's former home)
from ironspire.store.types import JSONText, RowId, Timestamp

metadata = MetaData()

#: Workspace-wide settings (default route, degradation policies), as JSON text values.
settings = Table(
    "settings", metadata,
    Column("key", String(100), primary_key=True),
    Column("value", Text, nullable=False),
)

#: Per-provider state that is not a setting value: whether the user disabled it.
providers = Table(
    "providers", metadata,
    Column("id", String(64), primary_key=True),
    Column("enabled", Boolean, nullable=False),
)

#: Non-secret provider settings: base URL overrides, region, deployment, CLI path.
provider_settings = Table(
    "provider_settings", metadata,
    Column("provider", String(64), primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

custom_endpoints = Table(
    "custom_endpoints", metadata,
    Column("provider_id", String(64), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("base_url", Text, nullable=False),
    Column("model_id", Text, nullable=False),
    Column("display_name", Text, nullable=True),
    Column("context_window", Integer, nullable=False),
    Column("max_output_tokens", Integer, nullable=False),
    Column("tools", Boolean, nullable=False),
    Column("vision", Boolean, nullable=False),
    Column("has_key", Boolean, nullable=False),
)

#: An agent; provider/model are NULL while it inherits the workspace default. A deleted agent
#: keeps its row (``deleted_at`` > 0) so that the ledger, which refers to agents by id, still
#: names it; live agents have ``deleted_at`` = 0, so a name is unique among them.
agents = Table(
    "agents", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False),
    Column("system", Text, nullable=True),
    Column("provider", String(64), nullable=True),
    Column("model", Text, nullable=True),
    Column("created_at", Timestamp, nullable=False),
    Column("deleted_at", Float, nullable=False, server_default="0"),
    #: how deeply the agent reasons (low / medium / high), applied where its model reasons
    Column("effort", String(16), nullable=False, server_default="high"),
    UniqueConstraint("name", "deleted_at", name="uq_agents_name_deleted_at"),
)

#: One neutral message (Message.to_json). ``status`` is "ok" for history, "unanswered" for a
#: user message whose turn failed: kept so the user can see and resend it, never sent again.
messages = Table(
    "messages", metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("agent_id", Integer, ForeignKey("agents.id", ondelete="CASCADE"), nullable=False),
    Column("role", String(16), nullable=False),
    Column("body", JSONText, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Index("ix_messages_agent_id", "agent_id"),
)

#: The ledger: one row per request, successful or not. Append-only: figures are aggregated in
#: SQL, never kept as counters. On PostgreSQL it is partitioned by month on ``at`` (primary key
#: (id, at), see migration 0001 and store/postgres.py).
usage = Table(
    "usage", metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("at", Timestamp, nullable=False),
    Column("session", String(32), nullable=False),
    Column("agent_id", Integer, ForeignKey("agents.id", name="fk_usage_agent_id_agents"), nullable=False),
    Column("provider", String(64), nullable=False),
    Column("model", Text, nullable=False),
    Column("input_tokens", Integer, nullable=False),
    Column("output_tokens", Integer, nullable=False),
    Column("cache_read_tokens", Integer, nullable=False),
    Column("cache_write_tokens", Integer, nullable=False),
    Column("reasoning_tokens", Integer, nullable=False),
    #: billed cost; NULL = unknown (no known price, or unknown counts), never taken for $0
    Column("cost_usd", Float, nullable=True),
    Column("api_cost_usd", Float, nullable=True),
    Column("latency_s", Float, nullable=False),
    Column("outcome", String(64), nullable=False),
    Column("streamed", Boolean, nullable=False),
    #: ``Usage.state``: "reported", "estimated", "unknown"; NULL on rows older than revision 0003 (reported)
    Column("usage_state", String(16), nullable=True),
    #: the price the row was costed at (``catalog.models.Price`` JSON + "source"); NULL when none was known
    Column("price", Text, nullable=True),
    #: the route's place in the turn's chain: 0 = the agent's own route, n = its n-th fallback
    #: route (``workspace/fallback.py``); a turn tries each place at most once, so (turn,
    #: attempt) names one request. NULL on rows older than revision 0009 (their own route)
    Column("attempt", Integer, nullable=True),
    #: on a request to a fallback route (attempt > 0), the route the turn was meant for
    #: (``provider/model``) that it stood in for: known even when that route was skipped
    #: unrequested (disabled, cooling down), so it has no row of its own; NULL otherwise
    Column("fallback_from", Text, nullable=True),
    #: which turn the request was made for: the id of the turn's user message (``messages.id``),
    #: shared by every request of one turn (its own route's and its fallbacks'), so a turn's
    #: attempts are one query apart and lead to the conversation they belong to. Set by the turn
    #: log from the message it writes in the same transaction; NULL on rows older than revision
    #: 0009 and on rows that came from elsewhere without one
    Column("turn", RowId, nullable=True),
    Index("ix_usage_at_cover", *("at", "agent_id", "provider", "model", "outcome", "usage_state", "cost_usd",
                                 "api_cost_usd", "input_tokens", "output_tokens", "cache_read_tokens",
                                 "cache_write_tokens", "reasoning_tokens", "latency_s")),
    Index("ix_usage_session", "session"),
    Index("ix_usage_agent_id_at", "agent_id", "at"),
    Index("ix_usage_provider_at", "provider", "at"),
    Index("ix_usage_outcome_at", "outcome", "at"),
    Index("ix_usage_latency", "provider", "outcome", "latency_s", "at", "agent_id"),
)
#: Requests to fallback routes only (partial indexes: a healthy ledger adds nothing to them, so
#: the turn's write costs what it did): by time for the Reliability tab's fallback counts, by
#: turn for the Turns tab's "what came after this failure" of the page's rows.
_FALLBACK = usage.c.attempt > 0
Index("ix_usage_fallback_at", usage.c.at, sqlite_where=_FALLBACK, postgresql_where=_FALLBACK)
Index("ix_usage_fallback_turn", usage.c.turn, sqlite_where=_FALLBACK, postgresql_where=_FALLBACK)

TOKEN_COLUMNS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")
#: the value columns of the derived sums tables: every request counted with its NULL costs apart
#: (``usage_daily_detail``, ``usage_daily_route``), or the successful requests' sums apart as
#: ``store.ledger.SUMS`` (``usage_daily_agent`` and the hourly sums); floats where named here
ROUTE_SUMS = ("requests", *TOKEN_COLUMNS, "cost_usd", "cost_null", "api_cost_usd", "api_null", "latency_sum")
OUTCOME_SUMS = ("requests", "turns", *TOKEN_COLUMNS, "cost_usd", "cost_unknown", "api_cost_usd", "api_cost_unknown",
                "usage_unknown", "usage_estimated", "latency_ok")
_FLOAT_SUMS = {"cost_usd", "api_cost_usd", "latency_sum", "latency_ok"}


def _sums(names: tuple[str, ...]) -> list[Column[object]]:
    """Fresh NOT NULL columns named ``names`` (a Column belongs to one table)."""
    return [Column(n, Float if n in _FLOAT_SUMS else Integer, nullable=False) for n in names]


#: The ledger summed per UTC day, agent, route, outcome and usage state: the Analytics panel reads
#: whole days of a long period here and only the partial days at its edges from ``usage``.
#: Derived data, brought up to date before each read (``store/ledger.py``); ``usage_daily_detail_state``
#: holds the last ledger row id summed.
usage_daily_detail = Table(
    "usage_daily_detail", metadata,
    Column("day", Float, primary_key=True),
    Column("agent_id", Integer, primary_key=True),
    Column("provider", String(64), primary_key=True),
    Column("model", Text, primary_key=True),
    Column("outcome", String(64), primary_key=True),
    Column("usage_state", String(16), primary_key=True),
    *_sums(ROUTE_SUMS),
)

usage_daily_detail_state = Table(
    "usage_daily_detail_state", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("last_id", Integer, nullable=False),
)

#: ``usage_daily_detail`` without the agent: the ledger summed per UTC day, route, outcome and
#: usage state, a few hundred rows a day whatever the fleet's size, for the views of every agent
#: (totals, breakdowns by provider, model or outcome, a chart's per-bucket sums). Kept with
#: ``usage_daily_detail`` (same watermark, same transaction); clustered on its key on SQLite.
usage_daily_route = Table(
    "usage_daily_route", metadata,
    Column("day", Float, primary_key=True),
    Column("provider", String(64), primary_key=True),
    Column("model", Text, primary_key=True),
    Column("outcome", String(64), primary_key=True),
    Column("usage_state", String(16), primary_key=True),
    *_sums(ROUTE_SUMS),
    sqlite_with_rowid=False,
)

#: The ledger summed per UTC day, agent and provider, with the successful requests' sums already
#: apart (``turns``, ``cost_unknown``, ``latency_ok``, ... as ``store.ledger.SUMS``): the Fleet
#: grid and a chart stacked by agent read a row per agent and day here, no outcome to sort out.
#: Kept with ``usage_daily_detail`` (same watermark, same transaction); clustered on SQLite.
usage_daily_agent = Table(
    "usage_daily_agent", metadata,
    Column("day", Float, primary_key=True),
    Column("agent_id", Integer, primary_key=True),
    Column("provider", String(64), primary_key=True),
    *_sums(OUTCOME_SUMS),
    sqlite_with_rowid=False,
)

#: The same per hour (``hour``: its start, Unix time), per agent and provider and per provider
#: alone: a chart of a week or two in hourly or 3-hour buckets reads these instead of every row.
usage_hourly_agent = Table(
    "usage_hourly_agent", metadata,
    Column("hour", Float, primary_key=True),
    Column("agent_id", Integer, primary_key=True),
    Column("provider", String(64), primary_key=True),
    *_sums(OUTCOME_SUMS),
    sqlite_with_rowid=False,
)
usage_hourly_route = Table(
    "usage_hourly_route", metadata,
    Column("hour", Float, primary_key=True),
    Column("provider", String(64), primary_key=True),
    *_sums(OUTCOME_SUMS),
    sqlite_with_rowid=False,
)

#: Successful requests counted per UTC day, provider and latency bucket (``store/latency.py``):
#: the Reliability tab finds the bucket that holds a percentile's rank here and reads the exact
#: value from that bucket's slice of ``ix_usage_latency``. Kept with ``usage_daily_detail`` (same
#: watermark, same transaction); clustered on its key on SQLite, in the order the tab sums it
#: (provider, bucket), so a 90-day histogram needs no sort.
usage_daily_latency = Table(
    "usage_daily_latency", metadata,
    Column("provider", String(64), primary_key=True),
    Column("bucket", Integer, primary_key=True),
    Column("day", Float, primary_key=True),
    Column("requests", Integer, nullable=False),
    sqlite_with_rowid=False,
)

#: One row each time a provider's health state changed (the Reliability tab's timeline).
health_transitions = Table(
    "health_transitions", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("provider", String(64), nullable=False),
    Column("state_from", String(32), nullable=True),
    Column("state_to", String(32), nullable=False),
    Column("detail", Text, nullable=True),
    Index("ix_health_transitions_provider_at", "provider", "at"),
    Index("ix_health_transitions_at", "at"),
)

#: One row: the configuration revision. Every configuration write bumps it in its own
#: transaction, so a process learns with one cheap read whether what it holds is stale.
revision = Table(
    "revision", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("config", Integer, nullable=False),
)

#: The last known health of each provider (``HealthStatus.to_dict()`` as JSON), shared by every
#: process on the database: one probe serves every worker, and what live traffic showed one
#: worker the others show too. ``claimed_at`` is when a process last took the turn to probe.
#: Health is an observation, not configuration: writing it bumps no revision.
provider_health = Table(
    "provider_health", metadata,
    Column("provider", String(64), primary_key=True),
    Column("status", Text, nullable=True),
    Column("checked_at", Float, nullable=False),
    Column("claimed_at", Float, nullable=False),
)

#: Daily rollups of the ledger (``store/rollups.py``): one row per day (a UTC midnight, Unix
#: time), agent, provider, model and outcome class (ok or not), written once the day is over by
#: one INSERT ... SELECT ... GROUP BY; never updated per request. ``latency_s`` sums the rows'
#: latencies; ``unknown_usage`` counts the answered requests whose provider reported no usage;
#: ``first_at`` is the day's oldest row of the group.
usage_daily = Table(
    "usage_daily", metadata,
    Column("day", Float, primary_key=True),
    Column("agent_id", Integer, ForeignKey("agents.id", name="fk_usage_daily_agent_id_agents"), primary_key=True),
    Column("provider", String(64), primary_key=True),
    Column("model", Text, primary_key=True),
    Column("ok", Boolean, primary_key=True),
    Column("requests", BigInteger, nullable=False),
    Column("input_tokens", BigInteger, nullable=False),
    Column("output_tokens", BigInteger, nullable=False),
    Column("cache_read_tokens", BigInteger, nullable=False),
    Column("cache_write_tokens", BigInteger, nullable=False),
    Column("reasoning_tokens", BigInteger, nullable=False),
    Column("unknown_usage", BigInteger, nullable=False),
    Column("cost_usd", Float, nullable=False),
    Column("api_cost_usd", Float, nullable=False),
    Column("latency_s", Float, nullable=False),
    Column("first_at", Timestamp, nullable=False),
)

#: One row: the ledger is rolled up into ``usage_daily`` for every day before ``until``.
usage_rollup = Table(
    "usage_rollup", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("until", Float, nullable=False),
)

USAGE_COLUMNS = (
    "at", "session", "agent_id", "provider", "model", "input_tokens", "output_tokens", "cache_read_tokens",
    "cache_write_tokens", "reasoning_tokens", "cost_usd", "api_cost_usd", "latency_s", "outcome", "streamed",
    "usage_state", "price",
)
#: what a turn's request adds to ``USAGE_COLUMNS``: where it stands in the turn's route chain
#: (given by the agent); the turn log's row is ``USAGE_COLUMNS + ROUTE_COLUMNS`` and the log adds
#: ``turn`` itself (the id of the user message it writes with it). ``USAGE_COLUMNS`` alone is a
#: request outside any turn (a bulk load: bench/analytics.py)
ROUTE_COLUMNS = ("attempt", "fallback_from")
TURN_USAGE_COLUMNS = (*USAGE_COLUMNS, *ROUTE_COLUMNS, "turn")
MESSAGE_COLUMNS = ("agent_id", "role", "body", "status", "created_at")
