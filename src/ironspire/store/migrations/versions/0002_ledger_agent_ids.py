"""The ledger refers to agents by id; deleted agents keep a row; a configuration revision.

Revision ID: 0002
Revises: 0001

Ledger rows of agents deleted before this revision (their name is all that is left) get a
retired agent row each, so every row keeps a readable name.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

#: names the unnamed UNIQUE(name) of revision 0001, so batch mode can drop it
_NAMES = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def upgrade() -> None:
    with op.batch_alter_table("agents", naming_convention=_NAMES) as batch:
        batch.add_column(sa.Column("deleted_at", sa.Float(), nullable=False, server_default="0"))
        batch.drop_constraint("uq_agents_name", type_="unique")
        batch.create_unique_constraint("uq_agents_name_deleted_at", ["name", "deleted_at"])
    # Only a SQLite workspace can hold ledger rows from before this revision: PostgreSQL
    # databases start at this Ironspire, and the statement's float/timestamp mix is SQLite's.
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "INSERT INTO agents (name, system, provider, model, created_at, deleted_at) "
            "SELECT agent, NULL, NULL, NULL, MIN(at), CASE WHEN MAX(at) > 0 THEN MAX(at) ELSE 1 END FROM usage "
            "WHERE agent NOT IN (SELECT name FROM agents) GROUP BY agent"
        )
    with op.batch_alter_table("usage") as batch:
        batch.add_column(sa.Column("agent_id", sa.Integer(), nullable=True))
    op.execute(
        "UPDATE usage SET agent_id = (SELECT agents.id FROM agents WHERE agents.name = usage.agent "
        "ORDER BY agents.deleted_at LIMIT 1)"
    )
    with op.batch_alter_table("usage") as batch:
        batch.drop_index("ix_usage_agent")
        batch.drop_column("agent")
        batch.alter_column("agent_id", existing_type=sa.Integer(), nullable=False)
        batch.create_index("ix_usage_agent_id", ["agent_id"])
        batch.create_foreign_key("fk_usage_agent_id_agents", "agents", ["agent_id"], ["id"])
    op.create_table(
        "revision",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("config", sa.Integer(), nullable=False),
    )
    op.execute("INSERT INTO revision (id, config) VALUES (1, 0)")


def downgrade() -> None:
    op.drop_table("revision")
    with op.batch_alter_table("usage") as batch:
        batch.add_column(sa.Column("agent", sa.String(100), nullable=True))
    op.execute("UPDATE usage SET agent = (SELECT agents.name FROM agents WHERE agents.id = usage.agent_id)")
    with op.batch_alter_table("usage") as batch:
        batch.drop_constraint("fk_usage_agent_id_agents", type_="foreignkey")
        batch.drop_index("ix_usage_agent_id")
        batch.drop_column("agent_id")
        batch.alter_column("agent", existing_type=sa.String(100), nullable=False)
        batch.create_index("ix_usage_agent", ["agent"])
    op.execute("DELETE FROM agents WHERE deleted_at > 0")
    with op.batch_alter_table("agents") as batch:
        batch.drop_constraint("uq_agents_name_deleted_at", type_="unique")
        batch.drop_column("deleted_at")
        batch.create_unique_constraint("uq_agents_name", ["name"])
