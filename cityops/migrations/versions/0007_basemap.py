"""base map: roads, water and named places

Revision ID: 0007_basemap
Revises: 0006
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import cityops.db

revision = '0007_basemap'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('basemap_layer',
    sa.Column('key', sa.String(length=16), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('feature_count', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=200), nullable=True),
    sa.Column('synthetic', sa.Boolean(), nullable=False),
    sa.Column('imported_at', cityops.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('imported_by', sa.String(length=100), nullable=True),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_basemap_layer'))
    )
    op.create_table('basemap_feature',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('layer', sa.String(length=16), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=True),
    sa.Column('name_en', sa.String(length=100), nullable=True),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('speed_kmh', sa.Float(), nullable=True),
    sa.Column('oneway', sa.SmallInteger(), nullable=False),
    sa.Column('geom', cityops.db.Geometry(), nullable=False),
    sa.Column('properties', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['layer'], ['basemap_layer.key'], name=op.f('fk_basemap_feature_layer_basemap_layer'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_basemap_feature')),
    sa.UniqueConstraint('layer', 'code', name='uq_basemap_feature_layer_code')
    )
    op.create_index('ix_basemap_feature_layer_name', 'basemap_feature', ['layer', 'name'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_basemap_feature_layer_name', table_name='basemap_feature')
    op.drop_table('basemap_feature')
    op.drop_table('basemap_layer')
