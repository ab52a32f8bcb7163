"""The ledger links the requests of one turn and says which were made to a fallback route.

Revision ID: 0009
Revises: 0008

- ``usage.turn``: the id of the turn's user message, shared by every request of that turn (its
  own route's and its fallbacks'); ``usage.attempt``: the route's place in the turn's chain (0 =
  the agent's own route, n = its n-th fallback); ``usage.fallback_from``: on a fallback route's
  request, the route the turn was meant for. All nullable: older rows keep NULL (unknown turn,
  their own route), and adding them rewrites no row (an ALTER TABLE ADD COLUMN on SQLite, and on
  PostgreSQL's partitioned ledger, where every partition gets them).
- Two partial indexes over the requests to fallback routes only (``attempt > 0``): by time for
  the Reliability tab's counts, by turn for the Turns tab's view of a failure and what answered
  after it. Older rows are outside both, so building them reads the ledger once and stores
  nothing for it, and a healthy ledger's writes never touch them.
- The derived sums are untouched: they sum no column added here.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ironspire.store.types import RowId

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

FALLBACK = "attempt > 0"


def upgrade() -> None:
    # plain ALTER TABLE (not batch mode): SQLite adds a nullable column in place, where a batch
    # would copy the whole ledger
    op.add_column("usage", sa.Column("attempt", sa.Integer(), nullable=True))
    op.add_column("usage", sa.Column("fallback_from", sa.Text(), nullable=True))
    op.add_column("usage", sa.Column("turn", RowId, nullable=True))
    where = sa.text(FALLBACK)
    op.create_index("ix_usage_fallback_at", "usage", ["at"], sqlite_where=where, postgresql_where=where)
    op.create_index("ix_usage_fallback_turn", "usage", ["turn"], sqlite_where=where, postgresql_where=where)


def downgrade() -> None:
    op.drop_index("ix_usage_fallback_turn", table_name="usage")
    op.drop_index("ix_usage_fallback_at", table_name="usage")
    with op.batch_alter_table("usage") as batch:
        batch.drop_column("fallback_from")
        batch.drop_column("attempt")
        batch.drop_column("turn")
