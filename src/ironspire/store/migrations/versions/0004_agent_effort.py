"""Per-agent effort level (low / medium / high), High for existing agents as for new ones.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        batch.add_column(sa.Column("effort", sa.String(16), nullable=False, server_default="high"))


def downgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        batch.drop_column("effort")
