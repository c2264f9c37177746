"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22 19:27:15.779718
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('inbox',
    sa.Column('message_id', sa.String(length=128), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('message_id')
    )
    op.create_table('outbox',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('saga_id', sa.String(length=128), nullable=True),
    sa.Column('exchange', sa.String(length=200), nullable=False),
    sa.Column('routing_key', sa.String(length=300), nullable=False),
    sa.Column('message_id', sa.String(length=128), nullable=False),
    sa.Column('body', sa.LargeBinary(), nullable=False),
    sa.Column('headers', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=False),
    sa.Column('mandatory', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('available_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('dead_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('message_id')
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_pending', ['available_at', 'id'], unique=False)
        batch_op.create_index('ix_outbox_sent_at', ['sent_at'], unique=False)

    op.create_table('resource_locks',
    sa.Column('resource', sa.String(length=300), nullable=False),
    sa.Column('saga_id', sa.String(length=128), nullable=False),
    sa.Column('saga_type', sa.String(length=64), nullable=False),
    sa.Column('granted', sa.Boolean(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('resource', 'saga_id')
    )
    with op.batch_alter_table('resource_locks', schema=None) as batch_op:
        batch_op.create_index('ix_resource_locks_saga', ['saga_id'], unique=False)

    op.create_table('sagas',
    sa.Column('id', sa.String(length=128), nullable=False),
    sa.Column('type', sa.String(length=64), nullable=False),
    sa.Column('definition_version', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('phase', sa.String(length=16), nullable=False),
    sa.Column('input', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=False),
    sa.Column('resources', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=False),
    sa.Column('error', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=True),
    sa.Column('cancel_reason', sa.Text(), nullable=True),
    sa.Column('cancelled_by', sa.String(length=200), nullable=True),
    sa.Column('trace_id', sa.String(length=32), nullable=True),
    sa.Column('deadline', sa.DateTime(timezone=True), nullable=True),
    sa.Column('deadline_fired', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('sagas', schema=None) as batch_op:
        batch_op.create_index('ix_sagas_status_deadline', ['status', 'deadline'], unique=False)
        batch_op.create_index('ix_sagas_type_status', ['type', 'status'], unique=False)

    op.create_table('saga_history',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('saga_id', sa.String(length=128), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('step', sa.String(length=200), nullable=True),
    sa.Column('attempt', sa.Integer(), nullable=True),
    sa.Column('from_status', sa.String(length=32), nullable=True),
    sa.Column('to_status', sa.String(length=32), nullable=True),
    sa.Column('cause', sa.String(length=64), nullable=False),
    sa.Column('detail', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=True),
    sa.ForeignKeyConstraint(['saga_id'], ['sagas.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('saga_history', schema=None) as batch_op:
        batch_op.create_index('ix_saga_history_saga', ['saga_id', 'id'], unique=False)

    op.create_table('saga_steps',
    sa.Column('saga_id', sa.String(length=128), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('ordinal', sa.Integer(), nullable=False),
    sa.Column('stage', sa.Integer(), nullable=False),
    sa.Column('group_name', sa.String(length=200), nullable=True),
    sa.Column('item_key', sa.String(length=200), nullable=True),
    sa.Column('service', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=100), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('compensation_action', sa.String(length=100), nullable=True),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('comp_status', sa.String(length=32), nullable=False),
    sa.Column('comp_attempt', sa.Integer(), nullable=False),
    sa.Column('command_id', sa.String(length=128), nullable=True),
    sa.Column('deadline', sa.DateTime(timezone=True), nullable=True),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('comp_started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('comp_finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('result', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=True),
    sa.Column('error', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=True),
    sa.Column('comp_error', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=True),
    sa.Column('uncertain', sa.Boolean(), nullable=False),
    sa.Column('completed_seq', sa.Integer(), nullable=True),
    sa.Column('progress', sa.Text(), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['saga_id'], ['sagas.id'], ),
    sa.PrimaryKeyConstraint('saga_id', 'name')
    )
    with op.batch_alter_table('saga_steps', schema=None) as batch_op:
        batch_op.create_index('ix_saga_steps_due_at', ['due_at'], unique=False)
        batch_op.create_index('ix_saga_steps_status_deadline', ['status', 'comp_status', 'deadline'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('saga_steps', schema=None) as batch_op:
        batch_op.drop_index('ix_saga_steps_status_deadline')
        batch_op.drop_index('ix_saga_steps_due_at')

    op.drop_table('saga_steps')
    with op.batch_alter_table('saga_history', schema=None) as batch_op:
        batch_op.drop_index('ix_saga_history_saga')

    op.drop_table('saga_history')
    with op.batch_alter_table('sagas', schema=None) as batch_op:
        batch_op.drop_index('ix_sagas_type_status')
        batch_op.drop_index('ix_sagas_status_deadline')

    op.drop_table('sagas')
    with op.batch_alter_table('resource_locks', schema=None) as batch_op:
        batch_op.drop_index('ix_resource_locks_saga')

    op.drop_table('resource_locks')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_sent_at')
        batch_op.drop_index('ix_outbox_pending')

    op.drop_table('outbox')
    op.drop_table('inbox')
