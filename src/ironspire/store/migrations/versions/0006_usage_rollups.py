"""Daily rollups of the ledger, for analytics over millions of rows (see store/rollups.py).

Revision ID: 0006
Revises: 0005

The rollups start empty (``until`` = 0): the first analytics query rolls up every closed day.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ironspire.store.types import Timestamp

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage_daily",
        sa.Column("day", sa.Float(), primary_key=True),
        sa.Column("agent_id", sa.Integer(), sa.ForeignKey("agents.id", name="fk_usage_daily_agent_id_agents"),
                  primary_key=True),
        sa.Column("provider", sa.String(64), primary_key=True),
        sa.Column("model", sa.Text(), primary_key=True),
        sa.Column("ok", sa.Boolean(), primary_key=True),
        *(sa.Column(name, sa.BigInteger(), nullable=False) for name in (
            "requests", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
            "reasoning_tokens", "unknown_usage")),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("api_cost_usd", sa.Float(), nullable=False),
        sa.Column("latency_s", sa.Float(), nullable=False),
        sa.Column("first_at", Timestamp(), nullable=False),
    )
    op.create_table(
        "usage_rollup",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("until", sa.Float(), nullable=False),
    )
    op.execute("INSERT INTO usage_rollup (id, until) VALUES (1, 0)")


def downgrade() -> None:
    op.drop_table("usage_rollup")
    op.drop_table("usage_daily")
