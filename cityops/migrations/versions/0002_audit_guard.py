"""audit log is append-only: triggers refusing UPDATE and DELETE

Revision ID: 0002
Revises: 0001
"""
from __future__ import annotations

from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    from cityops.security.models import install_audit_guard

    install_audit_guard(op.get_bind())


def downgrade() -> None:
    pass
