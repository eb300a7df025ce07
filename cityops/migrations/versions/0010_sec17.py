"""security (issue 17): the audit guard also refuses TRUNCATE (PostgreSQL, + revoked privileges) and
INSERT OR REPLACE (SQLite)

Revision ID: 0010_sec17
Revises: 0009_indicators
"""
from __future__ import annotations

from alembic import op

revision = '0010_sec17'
down_revision = '0009_indicators'
branch_labels = None
depends_on = None


def upgrade() -> None:
    from cityops.security.models import install_audit_guard

    install_audit_guard(op.get_bind())


def downgrade() -> None:
    pass
