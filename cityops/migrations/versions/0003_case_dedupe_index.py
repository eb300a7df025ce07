"""index for the duplicate search: open cases of one category near a point

Revision ID: 0003
Revises: 0002
"""
from __future__ import annotations

from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_case_file_category_lat_lon", "case_file", ["category_id", "lat", "lon"])


def downgrade() -> None:
    op.drop_index("ix_case_file_category_lat_lon", table_name="case_file")
