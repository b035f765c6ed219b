"""leads: mail held until a return date (out-of-office) and where a lead came from

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01 04:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # An out-of-office reply's return date: no journey email before it.
    op.add_column("leads", sa.Column("mail_held_until", sa.DateTime(timezone=True), nullable=True))
    # How the lead came to be when not by an enrollment, e.g. `out-of-office` (a deputy).
    op.add_column("leads", sa.Column("source", sa.String(length=40), nullable=True))


def downgrade() -> None:
    op.drop_column("leads", "source")
    op.drop_column("leads", "mail_held_until")
