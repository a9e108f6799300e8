"""outbox rows remember how many parts of a split message are out, and when they were last tried

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-21 17:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parts_sent", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_outbox_attempted", ["attempted_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_attempted")
        batch_op.drop_column("attempted_at")
        batch_op.drop_column("parts_sent")
