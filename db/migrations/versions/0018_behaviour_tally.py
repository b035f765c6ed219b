"""running behaviour totals per lead, which events are folded into them, and indexes for
the events segments read and for events never signalled

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-01 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("leads") as table:
        table.add_column(sa.Column("behaviour_tally", sa.JSON(), nullable=True))
    # Every existing event untallied: a lead's next rescore builds its tally from all of them.
    with op.batch_alter_table("engagement_events") as table:
        table.add_column(
            sa.Column("tallied", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_index(
        "ix_engagement_untallied",
        "engagement_events",
        ["lead_id"],
        postgresql_where=sa.text("NOT tallied"),
        sqlite_where=sa.text("NOT tallied"),
    )
    # Events stored before the API's sweep existed and never signalled stay that way (the
    # sweep would deliver old news to journeys enrolled since).
    op.execute("UPDATE engagement_events SET signalled_at = received_at WHERE signalled_at IS NULL")
    op.create_index(
        "ix_engagement_unsignalled",
        "engagement_events",
        ["received_at"],
        postgresql_where=sa.text("signalled_at IS NULL"),
        sqlite_where=sa.text("signalled_at IS NULL"),
    )
    op.create_index(
        "ix_engagement_lead_type_time", "engagement_events", ["lead_id", "type", "occurred_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_engagement_unsignalled", table_name="engagement_events")
    op.drop_index("ix_engagement_lead_type_time", table_name="engagement_events")
    op.drop_index("ix_engagement_untallied", table_name="engagement_events")
    with op.batch_alter_table("engagement_events") as table:
        table.drop_column("tallied")
    with op.batch_alter_table("leads") as table:
        table.drop_column("behaviour_tally")
