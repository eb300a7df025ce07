"""security (issue 17): the audit guard also refuses TRUNCATE (PostgreSQL, + revoked privileges) and
INSERT OR REPLACE (SQLite); per-source sign-in lock

Revision ID: 0010_sec17
Revises: 0009_indicators
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import cityops.db

revision = '0010_sec17'
down_revision = '0009_indicators'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('signin_source',
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('first_failed_at', cityops.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('locked_until', cityops.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('source')
    )
    from cityops.security.models import install_audit_guard

    install_audit_guard(op.get_bind())


def downgrade() -> None:
    op.drop_table('signin_source')
