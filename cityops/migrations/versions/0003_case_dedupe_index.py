"""partial index for the duplicate search: open cases of one category near a point

Revision ID: 0003
Revises: 0002
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

OPEN = ("accepted", "acknowledged", "dispatched", "handled", "inspected", "inspecting", "registered",
        "reported", "sent_back", "suspended", "verified", "verifying")


def upgrade() -> None:
    where = sa.column("state").in_(OPEN)
    op.create_index("ix_case_file_open_category_lat_lon", "case_file", ["category_id", "lat", "lon"],
                    sqlite_where=where, postgresql_where=where)


def downgrade() -> None:
    op.drop_index("ix_case_file_open_category_lat_lon", table_name="case_file")
