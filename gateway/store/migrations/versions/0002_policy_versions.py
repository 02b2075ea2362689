"""policy versions added at run time

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 23:40:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('policy_versions',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('environment', sa.String(length=10), nullable=False),
    sa.Column('region', sa.String(length=6), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('effective_from', sa.Date(), nullable=False),
    sa.Column('effective_to', sa.Date(), nullable=True),
    sa.Column('document', sa.Text(), nullable=False),
    sa.Column('created_by', sa.String(length=40), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('idempotency_token', sa.String(length=40), nullable=True),
    sa.ForeignKeyConstraint(['created_by'], ['clients.id'], name=op.f('fk_policy_versions_created_by_clients')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_policy_versions')),
    sa.UniqueConstraint('environment', 'region', 'version', name=op.f('uq_policy_versions_environment_region_version')),
    sa.UniqueConstraint('idempotency_token', name=op.f('uq_policy_versions_idempotency_token'))
    )


def downgrade() -> None:
    op.drop_table('policy_versions')
