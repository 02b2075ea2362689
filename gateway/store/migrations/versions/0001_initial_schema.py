"""initial schema

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-21 22:07:32.325591
"""
import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('client_id', sa.String(length=40), nullable=True),
    sa.Column('environment', sa.String(length=10), nullable=True),
    sa.Column('operation', sa.String(length=100), nullable=False),
    sa.Column('upstream', sa.String(length=100), nullable=False),
    sa.Column('region', sa.String(length=6), nullable=True),
    sa.Column('gateway_id', sa.String(length=40), nullable=True),
    sa.Column('request_id', sa.String(length=128), nullable=True),
    sa.Column('upstream_status', sa.Integer(), nullable=True),
    sa.Column('upstream_code', sa.String(length=40), nullable=True),
    sa.Column('outcome', sa.String(length=60), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('latency_ms', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_events'))
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_events_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_events_client_id'), ['client_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_events_gateway_id'), ['gateway_id'], unique=False)

    op.create_table('clients',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('environment', sa.String(length=10), nullable=False),
    sa.Column('scopes', sa.Text(), nullable=False),
    sa.Column('key_prefix', sa.String(length=24), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('jwe_kid', sa.String(length=40), nullable=False),
    sa.Column('jwe_key_enc', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_clients')),
    sa.UniqueConstraint('jwe_kid', name=op.f('uq_clients_jwe_kid')),
    sa.UniqueConstraint('key_hash', name=op.f('uq_clients_key_hash'))
    )
    op.create_table('enrolments',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('client_id', sa.String(length=40), nullable=False),
    sa.Column('environment', sa.String(length=10), nullable=False),
    sa.Column('idempotency_token', sa.String(length=40), nullable=True),
    sa.Column('region', sa.String(length=6), nullable=False),
    sa.Column('upstream', sa.String(length=100), nullable=False),
    sa.Column('person_bidx', sa.String(length=64), nullable=False),
    sa.Column('id_number_enc', sa.Text(), nullable=False),
    sa.Column('name_enc', sa.Text(), nullable=False),
    sa.Column('employer_uscc', sa.String(length=18), nullable=False),
    sa.Column('employer_name', sa.String(length=200), nullable=False),
    sa.Column('hire_date', sa.String(length=10), nullable=False),
    sa.Column('insurance_types', sa.String(length=200), nullable=False),
    sa.Column('contribution_base', sa.String(length=20), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('reference', sa.String(length=40), nullable=False),
    sa.Column('bureau_reference', sa.String(length=64), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_enrolments_client_id_clients')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_enrolments')),
    sa.UniqueConstraint('idempotency_token', name=op.f('uq_enrolments_idempotency_token')),
    sa.UniqueConstraint('reference', name=op.f('uq_enrolments_reference'))
    )
    with op.batch_alter_table('enrolments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_enrolments_client_id'), ['client_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_enrolments_person_bidx'), ['person_bidx'], unique=False)

    op.create_table('idempotency_records',
    sa.Column('client_id', sa.String(length=40), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('token', sa.String(length=40), nullable=False),
    sa.Column('holder', sa.String(length=40), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('method', sa.String(length=10), nullable=False),
    sa.Column('path', sa.String(length=500), nullable=False),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('response_status', sa.Integer(), nullable=True),
    sa.Column('response_headers', sa.Text(), nullable=True),
    sa.Column('response_body_enc', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_idempotency_records_client_id_clients')),
    sa.PrimaryKeyConstraint('client_id', 'key', name=op.f('pk_idempotency_records')),
    sa.UniqueConstraint('token', name=op.f('uq_idempotency_records_token'))
    )
    with op.batch_alter_table('idempotency_records', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_idempotency_records_expires_at'), ['expires_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('idempotency_records', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_idempotency_records_expires_at'))

    op.drop_table('idempotency_records')
    with op.batch_alter_table('enrolments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_enrolments_person_bidx'))
        batch_op.drop_index(batch_op.f('ix_enrolments_client_id'))

    op.drop_table('enrolments')
    op.drop_table('clients')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_events_gateway_id'))
        batch_op.drop_index(batch_op.f('ix_audit_events_client_id'))
        batch_op.drop_index(batch_op.f('ix_audit_events_at'))

    op.drop_table('audit_events')
