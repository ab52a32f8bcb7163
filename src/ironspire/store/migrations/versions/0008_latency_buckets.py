"""Latency buckets for the Reliability tab's exact percentiles (see store/latency.py).

Revision ID: 0008
Revises: 0007

- ``usage_daily_latency``: successful requests per UTC day, provider and latency bucket,
  derived from the ledger like ``usage_daily_detail`` and kept under its watermark.
- The derived daily sums are emptied (watermark back to 0): the next Analytics read sums the
  ledger again into both tables in one transaction, so the two never disagree about which rows
  they hold. The ledger itself is untouched.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage_daily_latency",
        sa.Column("day", sa.Float(), primary_key=True),
        sa.Column("provider", sa.String(64), primary_key=True),
        sa.Column("bucket", sa.Integer(), primary_key=True),
        sa.Column("requests", sa.Integer(), nullable=False),
        sqlite_with_rowid=False,
    )
    op.execute("DELETE FROM usage_daily_detail")
    op.execute("UPDATE usage_daily_detail_state SET last_id = 0")


def downgrade() -> None:
    op.drop_table("usage_daily_latency")
