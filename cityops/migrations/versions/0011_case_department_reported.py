"""case_department carries the case's report time: a department's case list walks its index; a covering index by case

Revision ID: 0011_case_department_reported
Revises: 0010_resources
Create Date: 2026-12-03 16:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import cityops.db

revision = '0011_case_department_reported'
down_revision = '0010_resources'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('case_department', schema=None) as batch_op:
        batch_op.add_column(sa.Column('case_reported_at', cityops.db.UTCDateTime(), nullable=True))
    op.execute("UPDATE case_department SET case_reported_at = "
               "(SELECT reported_at FROM case_file WHERE case_file.id = case_department.case_id)")
    with op.batch_alter_table('case_department', schema=None) as batch_op:
        batch_op.alter_column('case_reported_at', existing_type=cityops.db.UTCDateTime(), nullable=False)
        batch_op.drop_index('ix_case_department_dept_active')
        batch_op.create_index('ix_case_department_dept_active', ['department_code', 'case_reported_at', 'case_id'],
                              unique=False, sqlite_where=sa.text('released_at IS NULL'),
                              postgresql_where=sa.text('released_at IS NULL'))
        batch_op.drop_index('ix_case_department_case_id')
        batch_op.create_index('ix_case_department_case_active', ['case_id', 'department_code', 'released_at'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('case_department', schema=None) as batch_op:
        batch_op.drop_index('ix_case_department_case_active')
        batch_op.create_index('ix_case_department_case_id', ['case_id'], unique=False)
        batch_op.drop_index('ix_case_department_dept_active')
        batch_op.create_index('ix_case_department_dept_active', ['department_code', 'released_at', 'case_id'],
                              unique=False)
        batch_op.drop_column('case_reported_at')
