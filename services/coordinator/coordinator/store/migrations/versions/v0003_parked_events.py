"""sagas park events for a coordinator that has their definition version

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 21:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('sagas') as batch:
        batch.add_column(sa.Column('parked', sa.String(length=300), nullable=True))
        batch.create_index('ix_sagas_parked', ['parked'])
    op.create_table('parked_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('saga_id', sa.String(length=128), nullable=False),
    sa.Column('message_id', sa.String(length=128), nullable=True),
    sa.Column('event', sa.Text(), nullable=False),
    sa.Column('parked_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['saga_id'], ['sagas.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_parked_events_saga', 'parked_events', ['saga_id', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_parked_events_saga', table_name='parked_events')
    op.drop_table('parked_events')
    with op.batch_alter_table('sagas') as batch:
        batch.drop_index('ix_sagas_parked')
        batch.drop_column('parked')
