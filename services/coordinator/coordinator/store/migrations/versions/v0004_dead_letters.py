"""dead letters collected from every dead-letter queue, listable and replayable

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('dead_letters',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('dedupe_key', sa.String(length=64), nullable=False),
    sa.Column('queue', sa.String(length=300), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('message_id', sa.String(length=300), nullable=True),
    sa.Column('message_type', sa.String(length=100), nullable=True),
    sa.Column('saga_id', sa.String(length=128), nullable=True),
    sa.Column('content_type', sa.String(length=200), nullable=True),
    sa.Column('headers', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=False),
    sa.Column('body', sa.LargeBinary(), nullable=False),
    sa.Column('dead_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('collected_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('replayed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('replay_message_id', sa.String(length=128), nullable=True),
    sa.Column('replayed_by', sa.String(length=200), nullable=True),
    sa.Column('replay_reason', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('dedupe_key')
    )
    op.create_index('ix_dead_letters_dead_at', 'dead_letters', ['dead_at', 'id'], unique=False)
    op.create_index('ix_dead_letters_queue_reason', 'dead_letters', ['queue', 'reason'], unique=False)
    op.create_index('ix_dead_letters_saga', 'dead_letters', ['saga_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_dead_letters_saga', table_name='dead_letters')
    op.drop_index('ix_dead_letters_queue_reason', table_name='dead_letters')
    op.drop_index('ix_dead_letters_dead_at', table_name='dead_letters')
    op.drop_table('dead_letters')
