"""each leg of a step keeps its own command id, deadline and due time; outbox rows keep their span

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 20:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('saga_steps') as batch:
        batch.add_column(sa.Column('comp_command_id', sa.String(length=128), nullable=True))
        batch.add_column(sa.Column('comp_deadline', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('comp_due_at', sa.DateTime(timezone=True), nullable=True))
        batch.create_index('ix_saga_steps_comp_timers', ['comp_deadline', 'comp_due_at'])
    # Until now one set of columns served whichever leg was in flight: a compensation under
    # way takes its command id and timers over to its own columns.
    op.execute(
        "UPDATE saga_steps SET comp_command_id = command_id, comp_deadline = deadline, "
        "comp_due_at = due_at, command_id = NULL, deadline = NULL, due_at = NULL "
        "WHERE comp_status IN ('running', 'retry_wait')"
    )
    with op.batch_alter_table('outbox') as batch:
        batch.add_column(
            sa.Column(
                'span', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=True
            )
        )


def downgrade() -> None:
    with op.batch_alter_table('outbox') as batch:
        batch.drop_column('span')
    with op.batch_alter_table('saga_steps') as batch:
        batch.drop_index('ix_saga_steps_comp_timers')
        batch.drop_column('comp_due_at')
        batch.drop_column('comp_deadline')
        batch.drop_column('comp_command_id')
