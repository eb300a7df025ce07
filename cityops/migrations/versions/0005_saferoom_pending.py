"""safe-room queries: the decision lifecycle's first state is called pending

Revision ID: 0005
Revises: 0004_ai
"""
from __future__ import annotations

from alembic import op

revision = '0005'
down_revision = '0004_ai'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("UPDATE saferoom_query SET status = 'pending' WHERE status = 'proposed'")


def downgrade() -> None:
    op.execute("UPDATE saferoom_query SET status = 'proposed' WHERE status = 'pending'")
