"""Initial schema: settings, providers, provider settings, custom endpoints, agents, messages, usage.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ironspire.store.types import JSONText, RowId, Timestamp

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "settings",
        sa.Column("key", sa.String(100), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
    )
    op.create_table(
        "providers",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
    )
    op.create_table(
        "provider_settings",
        sa.Column("provider", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
    )
    op.create_table(
        "custom_endpoints",
        sa.Column("provider_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("base_url", sa.Text(), nullable=False),
        sa.Column("model_id", sa.Text(), nullable=False),
        sa.Column("display_name", sa.Text(), nullable=True),
        sa.Column("context_window", sa.Integer(), nullable=False),
        sa.Column("max_output_tokens", sa.Integer(), nullable=False),
        sa.Column("tools", sa.Boolean(), nullable=False),
        sa.Column("vision", sa.Boolean(), nullable=False),
        sa.Column("has_key", sa.Boolean(), nullable=False),
    )
    op.create_table(
        "agents",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(100), nullable=False, unique=not postgres),
        sa.Column("system", sa.Text(), nullable=True),
        sa.Column("provider", sa.String(64), nullable=True),
        sa.Column("model", sa.Text(), nullable=True),
        sa.Column("created_at", Timestamp(), nullable=False),
        # named on PostgreSQL, where revision 0002 drops it by this name
        *([sa.UniqueConstraint("name", name="uq_agents_name")] if postgres else []),
    )
    op.create_table(
        "messages",
        sa.Column("id", RowId, primary_key=True, autoincrement=True),
        sa.Column("agent_id", sa.Integer(), sa.ForeignKey("agents.id", ondelete="CASCADE"), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("body", JSONText(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", Timestamp(), nullable=False),
    )
    op.create_index("ix_messages_agent_id", "messages", ["agent_id"])
    # PostgreSQL: the ledger is partitioned by month on ``at`` (a partitioned table's primary key
    # must hold the partition key); the partitions themselves come from store.postgres.
    ledger_key: list[sa.schema.SchemaItem] = [sa.PrimaryKeyConstraint("id", "at")] if postgres else []
    op.create_table(
        "usage",
        sa.Column("id", RowId, primary_key=not postgres, autoincrement=True),
        sa.Column("at", Timestamp(), nullable=False),
        sa.Column("session", sa.String(32), nullable=False),
        sa.Column("agent", sa.String(100), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("cache_read_tokens", sa.Integer(), nullable=False),
        sa.Column("cache_write_tokens", sa.Integer(), nullable=False),
        sa.Column("reasoning_tokens", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("api_cost_usd", sa.Float(), nullable=True),
        sa.Column("latency_s", sa.Float(), nullable=False),
        sa.Column("outcome", sa.String(64), nullable=False),
        sa.Column("streamed", sa.Boolean(), nullable=False),
        *ledger_key,
        **({"postgresql_partition_by": "RANGE (at)"} if postgres else {}),  # type: ignore[arg-type]
    )
    op.create_index("ix_usage_at", "usage", ["at"])
    op.create_index("ix_usage_session", "usage", ["session"])
    op.create_index("ix_usage_agent", "usage", ["agent"])


def downgrade() -> None:
    for table in ("usage", "messages", "agents", "custom_endpoints", "provider_settings", "providers", "settings"):
        op.drop_table(table)
