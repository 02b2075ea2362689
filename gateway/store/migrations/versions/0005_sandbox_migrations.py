"""sandbox migration runs: runs, per-row outcomes, findings, review sample

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22

The tables of the sandbox's migration runs (``sandbox.store``). No column holds PII
in plaintext: rows are kept by their number in the data file, finding values and
sample cells are masked, bureau messages are stored without the person's details.
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('migration_runs',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('client_id', sa.String(length=40), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('phase', sa.String(length=16), nullable=False),
    sa.Column('source_file', sa.String(length=500), nullable=False),
    sa.Column('source_format', sa.String(length=8), nullable=True),
    sa.Column('source_encoding', sa.String(length=40), nullable=True),
    sa.Column('source_sha256', sa.String(length=64), nullable=False),
    sa.Column('source_bytes', sa.BigInteger(), nullable=False),
    sa.Column('mapping_file', sa.String(length=500), nullable=False),
    sa.Column('mapping_sha256', sa.String(length=64), nullable=False),
    sa.Column('batch_size', sa.Integer(), nullable=False),
    sa.Column('concurrency', sa.Integer(), nullable=False),
    sa.Column('seed', sa.Integer(), nullable=False),
    sa.Column('per_stratum', sa.Integer(), nullable=False),
    sa.Column('rows_total', sa.Integer(), nullable=True),
    sa.Column('rows_validated', sa.Integer(), nullable=False),
    sa.Column('replay_total', sa.Integer(), nullable=True),
    sa.Column('rows_replayed', sa.Integer(), nullable=False),
    sa.Column('batches_committed', sa.Integer(), nullable=False),
    sa.Column('checkpoint_row', sa.Integer(), nullable=True),
    sa.Column('phase_started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('phase_done_at_start', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('lease_holder', sa.String(length=40), nullable=True),
    sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('signed_off_by', sa.String(length=200), nullable=True),
    sa.Column('signed_off_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('sign_off_note', sa.Text(), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_migration_runs_client_id_clients')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_migration_runs'))
    )
    with op.batch_alter_table('migration_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_migration_runs_client_id'), ['client_id'], unique=False)

    op.create_table('migration_rows',
    sa.Column('run_id', sa.String(length=40), nullable=False),
    sa.Column('row_no', sa.Integer(), nullable=False),
    sa.Column('level1', sa.String(length=8), nullable=False),
    sa.Column('level2', sa.String(length=8), nullable=True),
    sa.Column('warnings', sa.Integer(), nullable=False),
    sa.Column('region', sa.String(length=6), nullable=True),
    sa.Column('action', sa.String(length=24), nullable=True),
    sa.Column('outcome', sa.String(length=24), nullable=True),
    sa.Column('code', sa.String(length=60), nullable=True),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('reference', sa.String(length=64), nullable=True),
    sa.Column('resource_id', sa.String(length=40), nullable=True),
    sa.Column('replayed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['migration_runs.id'], name=op.f('fk_migration_rows_run_id_migration_runs'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', 'row_no', name=op.f('pk_migration_rows'))
    )
    with op.batch_alter_table('migration_rows', schema=None) as batch_op:
        batch_op.create_index('ix_migration_rows_run_outcome', ['run_id', 'outcome'], unique=False)

    op.create_table('migration_findings',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('run_id', sa.String(length=40), nullable=False),
    sa.Column('row_no', sa.Integer(), nullable=False),
    sa.Column('level', sa.Integer(), nullable=False),
    sa.Column('rule', sa.String(length=60), nullable=False),
    sa.Column('severity', sa.String(length=8), nullable=False),
    sa.Column('field', sa.String(length=60), nullable=True),
    sa.Column('column_name', sa.String(length=200), nullable=True),
    sa.Column('value', sa.String(length=200), nullable=True),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('related_row', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['migration_runs.id'],
                            name=op.f('fk_migration_findings_run_id_migration_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_migration_findings'))
    )
    with op.batch_alter_table('migration_findings', schema=None) as batch_op:
        batch_op.create_index('ix_migration_findings_run_rule', ['run_id', 'rule', 'row_no'], unique=False)

    op.create_table('migration_sample',
    sa.Column('run_id', sa.String(length=40), nullable=False),
    sa.Column('row_no', sa.Integer(), nullable=False),
    sa.Column('stratum', sa.String(length=100), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('canonical', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['migration_runs.id'],
                            name=op.f('fk_migration_sample_run_id_migration_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', 'row_no', name=op.f('pk_migration_sample'))
    )


def downgrade() -> None:
    op.drop_table('migration_sample')
    with op.batch_alter_table('migration_findings', schema=None) as batch_op:
        batch_op.drop_index('ix_migration_findings_run_rule')
    op.drop_table('migration_findings')
    with op.batch_alter_table('migration_rows', schema=None) as batch_op:
        batch_op.drop_index('ix_migration_rows_run_outcome')
    op.drop_table('migration_rows')
    with op.batch_alter_table('migration_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_migration_runs_client_id'))
    op.drop_table('migration_runs')
