"""Ledger rows say whether their token counts were reported, estimated or unknown.

A request whose provider sent no usage used to be stored as zero tokens, which reads as a free
request. ``usage_state`` is NULL for rows written before this revision (they are "reported",
or zero for failures, as before) and one of "reported", "estimated", "unknown" after it.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("usage") as batch:
        batch.add_column(sa.Column("usage_state", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("usage") as batch:
        batch.drop_column("usage_state")
