"""indexes for paging a segment's members (by entry, and by lead id)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 02:45:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_segment_memberships_segment_entered",
        "segment_memberships",
        ["segment", "entered_at", "lead_id"],
    )
    op.create_index(
        "ix_segment_memberships_segment_lead", "segment_memberships", ["segment", "lead_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_segment_memberships_segment_lead", "segment_memberships")
    op.drop_index("ix_segment_memberships_segment_entered", "segment_memberships")
