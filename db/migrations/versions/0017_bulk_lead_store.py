"""bulk imports store their new leads first: the lead a staged row became, and counts

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01 07:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("enrollment_job_rows") as table:
        table.add_column(sa.Column("lead_id", sa.String(length=36), nullable=True))
        table.add_column(
            sa.Column("double_opt_in", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("enrollment_jobs") as table:
        table.add_column(sa.Column("stored_rows", sa.Integer(), nullable=False, server_default="0"))
        table.add_column(sa.Column("starting_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("enrollment_job_chunks") as table:
        table.add_column(sa.Column("stored", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("enrollment_job_chunks") as table:
        table.drop_column("stored")
    with op.batch_alter_table("enrollment_jobs") as table:
        table.drop_column("starting_at")
        table.drop_column("stored_rows")
    with op.batch_alter_table("enrollment_job_rows") as table:
        table.drop_column("double_opt_in")
        table.drop_column("lead_id")
