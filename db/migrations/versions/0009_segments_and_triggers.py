"""segment memberships and their history, trigger firings

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 01:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "segment_memberships",
        sa.Column("lead_id", sa.String(length=36), nullable=False),
        sa.Column("segment", sa.String(length=64), nullable=False),
        sa.Column("entered_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"]),
        sa.PrimaryKeyConstraint("lead_id", "segment"),
    )
    op.create_index("ix_segment_memberships_segment", "segment_memberships", ["segment"])
    op.create_index("ix_segment_memberships_entered_at", "segment_memberships", ["entered_at"])
    op.create_table(
        "segment_transitions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("lead_id", sa.String(length=36), nullable=False),
        sa.Column("segment", sa.String(length=64), nullable=False),
        sa.Column("change", sa.String(length=10), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cause", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_segment_transitions_lead_id", "segment_transitions", ["lead_id"])
    op.create_table(
        "trigger_firings",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("journey", sa.String(length=100), nullable=False),
        sa.Column("lead_id", sa.String(length=36), nullable=False),
        sa.Column("cause_key", sa.String(length=300), nullable=False),
        sa.Column("trigger", sa.String(length=200), nullable=False),
        sa.Column("fired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("workflow_id", sa.String(length=200), nullable=True),
        sa.Column("outcome", sa.String(length=30), nullable=True),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("journey", "lead_id", "cause_key", name="uq_trigger_firing"),
    )
    op.create_index("ix_trigger_firings_lead_id", "trigger_firings", ["lead_id"])


def downgrade() -> None:
    op.drop_table("trigger_firings")
    op.drop_table("segment_transitions")
    op.drop_table("segment_memberships")
