"""The ledger keeps the price it used and an unknown cost as unknown (``usage_state`` came in
0003), and is indexed for the Analytics panel; daily sums; provider health transitions.
Numbered 0007: after the PostgreSQL store's 0005 provider health and 0006 rollups.

Revision ID: 0007
Revises: 0006

- ``usage.cost_usd`` becomes nullable: NULL is an unknown cost (a billed model without a known
  price, or counts that are unknown), never $0.
- ``usage.price``: the price the row was costed at (JSON: USD per million tokens and where it
  came from, catalogue or the user's override); NULL when there was none.
- ``health_transitions``: one row each time a provider's health state changed.
- ``usage_daily_detail``: the ledger summed per UTC day, agent, route, outcome and usage state (derived,
  filled on first read: long periods read whole days here), with its watermark ``usage_daily_detail_state`` (beside
  0006's ``usage_daily``, which is keyed on ok/not-ok only).
- Indexes for the Analytics panel: a covering index on the time column (every aggregate of a
  period reads the index only, never the table), and time-ordered indexes per agent, provider
  and outcome (a filtered tab reads only its own rows).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

#: the covering index's columns (``store.schema.USAGE_COVER``), time first
COVER = ("at", "agent_id", "provider", "model", "outcome", "usage_state", "cost_usd", "api_cost_usd",
         "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "latency_s")


def upgrade() -> None:
    with op.batch_alter_table("usage") as batch:
        batch.add_column(sa.Column("price", sa.Text(), nullable=True))
        batch.alter_column("cost_usd", existing_type=sa.Float(), nullable=True)
        batch.drop_index("ix_usage_at")
        batch.create_index("ix_usage_at_cover", list(COVER))
        batch.create_index("ix_usage_agent_id_at", ["agent_id", "at"])
        batch.create_index("ix_usage_provider_at", ["provider", "at"])
        batch.create_index("ix_usage_outcome_at", ["outcome", "at"])
        batch.create_index("ix_usage_latency", ["provider", "outcome", "latency_s", "at", "agent_id"])
        batch.drop_index("ix_usage_agent_id")
    op.create_table(
        "usage_daily_detail",
        sa.Column("day", sa.Float(), primary_key=True),
        sa.Column("agent_id", sa.Integer(), primary_key=True),
        sa.Column("provider", sa.String(64), primary_key=True),
        sa.Column("model", sa.Text(), primary_key=True),
        sa.Column("outcome", sa.String(64), primary_key=True),
        sa.Column("usage_state", sa.String(16), primary_key=True),
        *(sa.Column(c, sa.Integer(), nullable=False) for c in (
            "requests", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
            "reasoning_tokens")),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("cost_null", sa.Integer(), nullable=False),
        sa.Column("api_cost_usd", sa.Float(), nullable=False),
        sa.Column("api_null", sa.Integer(), nullable=False),
        sa.Column("latency_sum", sa.Float(), nullable=False),
    )
    op.create_table(
        "usage_daily_detail_state",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("last_id", sa.Integer(), nullable=False),
    )
    op.execute("INSERT INTO usage_daily_detail_state (id, last_id) VALUES (1, 0)")
    op.create_table(
        "health_transitions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("state_from", sa.String(32), nullable=True),
        sa.Column("state_to", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
    )
    op.create_index("ix_health_transitions_provider_at", "health_transitions", ["provider", "at"])
    op.create_index("ix_health_transitions_at", "health_transitions", ["at"])


def downgrade() -> None:
    op.drop_table("usage_daily_detail_state")
    op.drop_table("usage_daily_detail")
    op.drop_table("health_transitions")
    op.execute("UPDATE usage SET cost_usd = 0 WHERE cost_usd IS NULL")
    with op.batch_alter_table("usage") as batch:
        batch.create_index("ix_usage_agent_id", ["agent_id"])
        batch.drop_index("ix_usage_latency")
        batch.drop_index("ix_usage_outcome_at")
        batch.drop_index("ix_usage_provider_at")
        batch.drop_index("ix_usage_agent_id_at")
        batch.drop_index("ix_usage_at_cover")
        batch.create_index("ix_usage_at", ["at"])
        batch.alter_column("cost_usd", existing_type=sa.Float(), nullable=False)
        batch.drop_column("price")
