"""suppression list (keyed address hashes) and suppressed rows of bulk jobs

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 22:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "suppressions",
        sa.Column("address_hash", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("address_hash"),
    )
    with op.batch_alter_table("enrollment_job_chunks") as batch_op:
        batch_op.add_column(sa.Column("suppressed", sa.JSON(), nullable=False, server_default="[]"))
    _action_length(40, 20)


def downgrade() -> None:
    _action_length(20, 40)
    with op.batch_alter_table("enrollment_job_chunks") as batch_op:
        batch_op.drop_column("suppressed")
    op.drop_table("suppressions")


def _action_length(new: int, old: int) -> None:
    """Room for `resubscribe_requested`. SQLite doesn't enforce VARCHAR lengths."""
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column(
            "consent_records",
            "action",
            type_=sa.String(length=new),
            existing_type=sa.String(length=old),
            existing_nullable=False,
        )
