"""timeline of every lifecycle but the case workflow's (cityops.lifecycle)

Revision ID: 0004
Revises: 0003
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import cityops.db

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'timeline_entry',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
        sa.Column('object_type', sa.String(length=40), nullable=False),
        sa.Column('object_id', sa.String(length=64), nullable=False),
        sa.Column('at', cityops.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('actor', sa.String(length=120), nullable=False),
        sa.Column('actor_account_id', sa.Integer(), nullable=True),
        sa.Column('actor_roles', sa.String(length=200), nullable=True),
        sa.Column('department_code', sa.String(length=40), nullable=True),
        sa.Column('action', sa.String(length=60), nullable=False),
        sa.Column('from_state', sa.String(length=40), nullable=True),
        sa.Column('to_state', sa.String(length=40), nullable=True),
        sa.Column('note', sa.Text(), nullable=True),
        sa.Column('data', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'),
                  nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_timeline_entry')),
    )
    op.create_index('ix_timeline_entry_object', 'timeline_entry', ['object_type', 'object_id', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_timeline_entry_object', table_name='timeline_entry')
    op.drop_table('timeline_entry')
