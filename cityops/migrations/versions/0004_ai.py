"""smart dispatch: model versions, proposals stored with cases, labelled examples

Revision ID: 0004_ai
Revises: 0004
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import cityops.db

revision = '0004_ai'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'ai_model',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=12), nullable=False),
        sa.Column('created_at', cityops.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('promoted_at', cityops.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('trained_by', sa.String(length=80), nullable=True),
        sa.Column('corpus_version', sa.String(length=40), nullable=False),
        sa.Column('catalogue_version', sa.String(length=60), nullable=True),
        sa.Column('n_train', sa.Integer(), nullable=False),
        sa.Column('n_corrections', sa.Integer(), nullable=False),
        sa.Column('max_example_id', sa.Integer(), nullable=False),
        sa.Column('metrics', sa.JSON(), nullable=False),
        sa.Column('train_s', sa.Float(), nullable=False),
        sa.Column('size_bytes', sa.Integer(), nullable=False),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('blob', sa.LargeBinary(), nullable=False),
        sa.Column('note', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('version'),
    )
    op.create_index('ix_ai_model_status', 'ai_model', ['status'])
    op.create_table(
        'ai_proposal',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('case_id', sa.Integer(), nullable=False),
        sa.Column('created_at', cityops.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('model_version', sa.Integer(), nullable=True),
        sa.Column('channel', sa.String(length=16), nullable=True),
        sa.Column('category_code', sa.String(length=16), nullable=True),
        sa.Column('score', sa.Float(), nullable=False),
        sa.Column('needs_review', sa.Boolean(), nullable=False),
        sa.Column('candidates', sa.JSON(), nullable=False),
        sa.Column('place', sa.JSON(), nullable=True),
        sa.Column('decision', sa.String(length=12), nullable=True),
        sa.Column('decided_at', cityops.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('decided_by', sa.String(length=80), nullable=True),
        sa.ForeignKeyConstraint(['case_id'], ['case_file.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('case_id'),
    )
    op.create_index('ix_ai_proposal_needs_review', 'ai_proposal', ['needs_review'])
    op.create_table(
        'ai_example',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('created_at', cityops.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('source', sa.String(length=20), nullable=False),
        sa.Column('case_id', sa.Integer(), nullable=True),
        sa.Column('routing_decision_id', sa.Integer(), nullable=True),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('channel', sa.String(length=16), nullable=True),
        sa.Column('category_code', sa.String(length=16), nullable=True),
        sa.Column('catalogue_version', sa.String(length=60), nullable=True),
        sa.Column('department_code', sa.String(length=40), nullable=True),
        sa.Column('street_code', sa.String(length=9), nullable=True),
        sa.Column('community_code', sa.String(length=12), nullable=True),
        sa.Column('grid_code', sa.String(length=15), nullable=True),
        sa.Column('fields', sa.JSON(), nullable=False),
        sa.Column('actor', sa.String(length=80), nullable=True),
        sa.Column('note', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['case_id'], ['case_file.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('routing_decision_id'),
    )
    op.create_index('ix_ai_example_case_id', 'ai_example', ['case_id'])


def downgrade() -> None:
    op.drop_table('ai_example')
    op.drop_table('ai_proposal')
    op.drop_table('ai_model')
