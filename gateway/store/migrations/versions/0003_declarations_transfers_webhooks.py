"""declarations, transfers, terminations and webhooks

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 00:38:16.085709
"""
import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Enrolments a bureau decides later are followed by the poller.
    with op.batch_alter_table('enrolments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('next_poll_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('lease_holder', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('poll_attempts', sa.Integer(), nullable=False, server_default='0'))
        batch_op.create_index(batch_op.f('ix_enrolments_next_poll_at'), ['next_poll_at'], unique=False)

    op.create_table('declarations',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('client_id', sa.String(length=40), nullable=False),
    sa.Column('environment', sa.String(length=10), nullable=False),
    sa.Column('idempotency_token', sa.String(length=40), nullable=True),
    sa.Column('region', sa.String(length=6), nullable=False),
    sa.Column('upstream', sa.String(length=100), nullable=False),
    sa.Column('employer_uscc', sa.String(length=18), nullable=False),
    sa.Column('employer_name', sa.String(length=200), nullable=False),
    sa.Column('period', sa.String(length=7), nullable=False),
    sa.Column('policy_version', sa.String(length=40), nullable=False),
    sa.Column('all_or_nothing', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('reference', sa.String(length=40), nullable=False),
    sa.Column('bureau_reference', sa.String(length=64), nullable=True),
    sa.Column('totals', sa.Text(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('next_poll_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('lease_holder', sa.String(length=40), nullable=True),
    sa.Column('poll_attempts', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_declarations_client_id_clients')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_declarations')),
    sa.UniqueConstraint('idempotency_token', name=op.f('uq_declarations_idempotency_token')),
    sa.UniqueConstraint('reference', name=op.f('uq_declarations_reference'))
    )
    with op.batch_alter_table('declarations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_declarations_client_id'), ['client_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_declarations_next_poll_at'), ['next_poll_at'], unique=False)

    op.create_table('terminations',
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
    sa.Column('leave_date', sa.String(length=10), nullable=False),
    sa.Column('insurance_types', sa.String(length=200), nullable=False),
    sa.Column('reason', sa.String(length=40), nullable=True),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('reference', sa.String(length=40), nullable=False),
    sa.Column('bureau_reference', sa.String(length=64), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('next_poll_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('lease_holder', sa.String(length=40), nullable=True),
    sa.Column('poll_attempts', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_terminations_client_id_clients')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_terminations')),
    sa.UniqueConstraint('idempotency_token', name=op.f('uq_terminations_idempotency_token')),
    sa.UniqueConstraint('reference', name=op.f('uq_terminations_reference'))
    )
    with op.batch_alter_table('terminations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_terminations_client_id'), ['client_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_terminations_next_poll_at'), ['next_poll_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_terminations_person_bidx'), ['person_bidx'], unique=False)

    op.create_table('transfers',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('client_id', sa.String(length=40), nullable=False),
    sa.Column('environment', sa.String(length=10), nullable=False),
    sa.Column('idempotency_token', sa.String(length=40), nullable=True),
    sa.Column('from_region', sa.String(length=6), nullable=False),
    sa.Column('to_region', sa.String(length=6), nullable=False),
    sa.Column('source_upstream', sa.String(length=100), nullable=False),
    sa.Column('target_upstream', sa.String(length=100), nullable=False),
    sa.Column('person_bidx', sa.String(length=64), nullable=False),
    sa.Column('id_number_enc', sa.Text(), nullable=False),
    sa.Column('name_enc', sa.Text(), nullable=False),
    sa.Column('insurance_types', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('reference', sa.String(length=40), nullable=False),
    sa.Column('bureau_reference', sa.String(length=64), nullable=True),
    sa.Column('target_reference', sa.String(length=40), nullable=False),
    sa.Column('target_bureau_reference', sa.String(length=64), nullable=True),
    sa.Column('source_records', sa.Text(), nullable=True),
    sa.Column('carried', sa.Text(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('next_poll_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('lease_holder', sa.String(length=40), nullable=True),
    sa.Column('poll_attempts', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_transfers_client_id_clients')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_transfers')),
    sa.UniqueConstraint('idempotency_token', name=op.f('uq_transfers_idempotency_token')),
    sa.UniqueConstraint('reference', name=op.f('uq_transfers_reference')),
    sa.UniqueConstraint('target_reference', name=op.f('uq_transfers_target_reference'))
    )
    with op.batch_alter_table('transfers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_transfers_client_id'), ['client_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_transfers_next_poll_at'), ['next_poll_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_transfers_person_bidx'), ['person_bidx'], unique=False)

    op.create_table('webhook_endpoints',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('client_id', sa.String(length=40), nullable=False),
    sa.Column('environment', sa.String(length=10), nullable=False),
    sa.Column('url', sa.String(length=2000), nullable=False),
    sa.Column('events', sa.Text(), nullable=False),
    sa.Column('description', sa.String(length=200), nullable=True),
    sa.Column('secret_enc', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_webhook_endpoints_client_id_clients')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_endpoints'))
    )
    with op.batch_alter_table('webhook_endpoints', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_webhook_endpoints_client_id'), ['client_id'], unique=False)

    op.create_table('webhook_events',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('client_id', sa.String(length=40), nullable=False),
    sa.Column('environment', sa.String(length=10), nullable=False),
    sa.Column('type', sa.String(length=60), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_webhook_events_client_id_clients')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_events'))
    )
    with op.batch_alter_table('webhook_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_webhook_events_client_id'), ['client_id'], unique=False)

    op.create_table('declaration_lines',
    sa.Column('declaration_id', sa.String(length=40), nullable=False),
    sa.Column('line', sa.Integer(), nullable=False),
    sa.Column('person_bidx', sa.String(length=64), nullable=True),
    sa.Column('id_number_enc', sa.Text(), nullable=False),
    sa.Column('name_enc', sa.Text(), nullable=False),
    sa.Column('change', sa.String(length=10), nullable=False),
    sa.Column('salary', sa.String(length=20), nullable=True),
    sa.Column('contribution_base', sa.String(length=20), nullable=True),
    sa.Column('base_clamped', sa.String(length=10), nullable=True),
    sa.Column('hire_date', sa.String(length=10), nullable=True),
    sa.Column('leave_date', sa.String(length=10), nullable=True),
    sa.Column('amounts', sa.Text(), nullable=True),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('problems', sa.Text(), nullable=True),
    sa.Column('upstream_code', sa.String(length=40), nullable=True),
    sa.Column('upstream_message', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['declaration_id'], ['declarations.id'], name=op.f('fk_declaration_lines_declaration_id_declarations')),
    sa.PrimaryKeyConstraint('declaration_id', 'line', name=op.f('pk_declaration_lines'))
    )
    with op.batch_alter_table('declaration_lines', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_declaration_lines_person_bidx'), ['person_bidx'], unique=False)

    op.create_table('transfer_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('transfer_id', sa.String(length=40), nullable=False),
    sa.Column('stage', sa.String(length=24), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['transfer_id'], ['transfers.id'], name=op.f('fk_transfer_events_transfer_id_transfers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_transfer_events')),
    sa.UniqueConstraint('transfer_id', 'stage', name=op.f('uq_transfer_events_transfer_id_stage'))
    )
    with op.batch_alter_table('transfer_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_transfer_events_transfer_id'), ['transfer_id'], unique=False)

    op.create_table('webhook_deliveries',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('event_id', sa.String(length=40), nullable=False),
    sa.Column('endpoint_id', sa.String(length=40), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('lease_holder', sa.String(length=40), nullable=True),
    sa.Column('last_status_code', sa.Integer(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['endpoint_id'], ['webhook_endpoints.id'], name=op.f('fk_webhook_deliveries_endpoint_id_webhook_endpoints')),
    sa.ForeignKeyConstraint(['event_id'], ['webhook_events.id'], name=op.f('fk_webhook_deliveries_event_id_webhook_events')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_deliveries')),
    sa.UniqueConstraint('event_id', 'endpoint_id', name=op.f('uq_webhook_deliveries_event_id_endpoint_id'))
    )
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_webhook_deliveries_endpoint_id'), ['endpoint_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_webhook_deliveries_event_id'), ['event_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_webhook_deliveries_next_attempt_at'), ['next_attempt_at'], unique=False)

    op.create_table('webhook_attempts',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('delivery_id', sa.String(length=40), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('latency_ms', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['delivery_id'], ['webhook_deliveries.id'], name=op.f('fk_webhook_attempts_delivery_id_webhook_deliveries')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_attempts'))
    )
    with op.batch_alter_table('webhook_attempts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_webhook_attempts_delivery_id'), ['delivery_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('enrolments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_enrolments_next_poll_at'))
        batch_op.drop_column('poll_attempts')
        batch_op.drop_column('lease_holder')
        batch_op.drop_column('locked_until')
        batch_op.drop_column('next_poll_at')
    with op.batch_alter_table('webhook_attempts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_webhook_attempts_delivery_id'))

    op.drop_table('webhook_attempts')
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_webhook_deliveries_next_attempt_at'))
        batch_op.drop_index(batch_op.f('ix_webhook_deliveries_event_id'))
        batch_op.drop_index(batch_op.f('ix_webhook_deliveries_endpoint_id'))

    op.drop_table('webhook_deliveries')
    with op.batch_alter_table('transfer_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_transfer_events_transfer_id'))

    op.drop_table('transfer_events')
    with op.batch_alter_table('declaration_lines', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_declaration_lines_person_bidx'))

    op.drop_table('declaration_lines')
    with op.batch_alter_table('webhook_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_webhook_events_client_id'))

    op.drop_table('webhook_events')
    with op.batch_alter_table('webhook_endpoints', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_webhook_endpoints_client_id'))

    op.drop_table('webhook_endpoints')
    with op.batch_alter_table('transfers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_transfers_person_bidx'))
        batch_op.drop_index(batch_op.f('ix_transfers_next_poll_at'))
        batch_op.drop_index(batch_op.f('ix_transfers_client_id'))

    op.drop_table('transfers')
    with op.batch_alter_table('terminations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_terminations_person_bidx'))
        batch_op.drop_index(batch_op.f('ix_terminations_next_poll_at'))
        batch_op.drop_index(batch_op.f('ix_terminations_client_id'))

    op.drop_table('terminations')
    with op.batch_alter_table('declarations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_declarations_next_poll_at'))
        batch_op.drop_index(batch_op.f('ix_declarations_client_id'))

    op.drop_table('declarations')
