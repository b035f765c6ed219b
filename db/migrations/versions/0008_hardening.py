"""feedback notes, feedback actor, webhook receipts, inbox sessions

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 23:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "feedback_notes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("lead_id", sa.String(length=36), nullable=False),
        sa.Column("text", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_feedback_notes_lead_id", "feedback_notes", ["lead_id"])
    op.create_table(
        "webhook_receipts",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("digest"),
    )
    op.create_index("ix_webhook_receipts_received_at", "webhook_receipts", ["received_at"])
    op.create_table(
        "inbox_sessions",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("key_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("csrf", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    op.create_index("ix_inbox_sessions_expires_at", "inbox_sessions", ["expires_at"])
    with op.batch_alter_table("sales_feedback") as batch_op:
        batch_op.add_column(sa.Column("actor", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sales_feedback") as batch_op:
        batch_op.drop_column("actor")
    op.drop_index("ix_inbox_sessions_expires_at", "inbox_sessions")
    op.drop_table("inbox_sessions")
    op.drop_index("ix_webhook_receipts_received_at", "webhook_receipts")
    op.drop_table("webhook_receipts")
    op.drop_index("ix_feedback_notes_lead_id", "feedback_notes")
    op.drop_table("feedback_notes")
