"""security (issue 17): the audit guard also refuses TRUNCATE (PostgreSQL, + revoked privileges) and
INSERT OR REPLACE (SQLite); per-source sign-in lock;
four-eyes admin changes; API keys expire

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
    op.create_table('admin_change',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('target', sa.String(length=64), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('permission', sa.String(length=64), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('requested_by', sa.String(length=64), nullable=False),
    sa.Column('requester_id', sa.Integer(), nullable=True),
    sa.Column('decided_by', sa.String(length=64), nullable=True),
    sa.Column('decided_at', cityops.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('decision_note', sa.String(length=500), nullable=True),
    sa.Column('outcome', sa.JSON(), nullable=True),
    sa.Column('created_at', cityops.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', cityops.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_admin_change_status'), 'admin_change', ['status'], unique=False)
    op.add_column('api_key', sa.Column('expires_at', cityops.db.UTCDateTime(timezone=True), nullable=True))
    from cityops.security.models import install_audit_guard

    install_audit_guard(op.get_bind())


def downgrade() -> None:
    op.drop_column('api_key', 'expires_at')
    op.drop_index(op.f('ix_admin_change_status'), table_name='admin_change')
    op.drop_table('admin_change')
    op.drop_table('signin_source')
