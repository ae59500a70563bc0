"""one lease mixin: webhook events are leased too; last_error on every leased row

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 14:10:00.000000
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("webhook_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lease_expires_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("last_error", sa.Text(), nullable=True))
    for table in ("replicas", "videos"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("last_error", sa.Text(), nullable=True))
    # Rows the old sweep could never find (a retry held in a killed worker's memory): make
    # them due now, so the new sweep re-sends each once. A copy still queued is harmless.
    now = datetime.now(UTC).replace(tzinfo=None)
    for statement in (
        "UPDATE webhook_events SET lease_expires_at = :now WHERE status = 'pending'",
        "UPDATE videos SET lease_expires_at = :now WHERE status = 'generating' "
        "AND lease_expires_at IS NULL AND deleted_at IS NULL",
        "UPDATE replicas SET lease_expires_at = :now WHERE status = 'started' "
        "AND lease_expires_at IS NULL AND attempts > 0 AND deleted_at IS NULL",
    ):
        op.execute(sa.text(statement).bindparams(sa.bindparam("now", now, type_=sa.DateTime())))


def downgrade() -> None:
    for table in ("replicas", "videos"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("last_error")
    with op.batch_alter_table("webhook_events", schema=None) as batch_op:
        batch_op.drop_column("last_error")
        batch_op.drop_column("lease_expires_at")
