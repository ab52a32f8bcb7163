"""Per-day (and per-hour) sums by route and by agent for the Analytics views, and latency buckets
for the Reliability tab's exact percentiles (see store/latency.py).

Revision ID: 0008
Revises: 0007

- ``usage_daily_latency``: successful requests per UTC day, provider and latency bucket,
  derived from the ledger like ``usage_daily_detail`` and kept under its watermark.
- ``usage_daily_route``: ``usage_daily_detail`` without the agent column (per UTC day, route,
  outcome and usage state), for totals and breakdowns over every agent.
- ``usage_daily_agent``: per UTC day, agent and provider, the successful requests' sums apart,
  for the Fleet grid and the charts stacked by agent; ``usage_hourly_agent`` and
  ``usage_hourly_route`` the same per hour (per agent and provider, per provider), for charts in
  hourly or 3-hour buckets.
- The derived daily sums are emptied (watermark back to 0): the next Analytics read sums the
  ledger again into all of them in one transaction, so they never disagree about which rows
  they hold. The ledger itself is untouched.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


#: the value columns of the two new sums tables (integers, unless named here as floats)
ROUTE_SUMS = ("requests", *(f"{t}_tokens" for t in ("input", "output", "cache_read", "cache_write", "reasoning")),
              "cost_usd", "cost_null", "api_cost_usd", "api_null", "latency_sum")
AGENT_SUMS = ("requests", "turns", *(f"{t}_tokens" for t in ("input", "output", "cache_read", "cache_write",
                                                             "reasoning")),
              "cost_usd", "cost_unknown", "api_cost_usd", "api_cost_unknown", "usage_unknown", "usage_estimated",
              "latency_ok")
FLOATS = {"cost_usd", "api_cost_usd", "latency_sum", "latency_ok"}


def _sums_table(name: str, keys: list[sa.Column[object]], sums: tuple[str, ...]) -> None:
    """A derived sums table: its key columns, then one NOT NULL column per sum; clustered on its
    key on SQLite."""
    op.create_table(
        name, *keys,
        *(sa.Column(c, sa.Float() if c in FLOATS else sa.Integer(), nullable=False) for c in sums),
        sqlite_with_rowid=False,
    )


def upgrade() -> None:
    _sums_table("usage_daily_latency", [
        sa.Column("provider", sa.String(64), primary_key=True), sa.Column("bucket", sa.Integer(), primary_key=True),
        sa.Column("day", sa.Float(), primary_key=True)], ("requests",))
    _sums_table("usage_daily_route", [
        sa.Column("day", sa.Float(), primary_key=True), sa.Column("provider", sa.String(64), primary_key=True),
        sa.Column("model", sa.Text(), primary_key=True), sa.Column("outcome", sa.String(64), primary_key=True),
        sa.Column("usage_state", sa.String(16), primary_key=True)], ROUTE_SUMS)
    _sums_table("usage_daily_agent", [
        sa.Column("day", sa.Float(), primary_key=True), sa.Column("agent_id", sa.Integer(), primary_key=True),
        sa.Column("provider", sa.String(64), primary_key=True)], AGENT_SUMS)
    _sums_table("usage_hourly_agent", [
        sa.Column("hour", sa.Float(), primary_key=True), sa.Column("agent_id", sa.Integer(), primary_key=True),
        sa.Column("provider", sa.String(64), primary_key=True)], AGENT_SUMS)
    _sums_table("usage_hourly_route", [
        sa.Column("hour", sa.Float(), primary_key=True), sa.Column("provider", sa.String(64), primary_key=True)],
        AGENT_SUMS)
    op.execute("DELETE FROM usage_daily_detail")
    op.execute("UPDATE usage_daily_detail_state SET last_id = 0")


def downgrade() -> None:
    op.drop_table("usage_hourly_route")
    op.drop_table("usage_hourly_agent")
    op.drop_table("usage_daily_agent")
    op.drop_table("usage_daily_route")
    op.drop_table("usage_daily_latency")
