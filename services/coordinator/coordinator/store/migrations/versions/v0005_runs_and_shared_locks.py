"""operator retries are runs of a step's legs; resources held shared or exclusive

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 21:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('saga_steps') as batch:
        batch.add_column(sa.Column('run', sa.Integer(), nullable=False, server_default='0'))
        batch.add_column(sa.Column('comp_run', sa.Integer(), nullable=False, server_default='0'))
    with op.batch_alter_table('sagas') as batch:
        batch.add_column(
            sa.Column(
                'shared_resources',
                sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'),
                nullable=True,
            )
        )
    with op.batch_alter_table('resource_locks') as batch:
        batch.add_column(
            sa.Column('mode', sa.String(length=16), nullable=False, server_default='exclusive')
        )


def downgrade() -> None:
    with op.batch_alter_table('resource_locks') as batch:
        batch.drop_column('mode')
    with op.batch_alter_table('sagas') as batch:
        batch.drop_column('shared_resources')
    with op.batch_alter_table('saga_steps') as batch:
        batch.drop_column('comp_run')
        batch.drop_column('run')
