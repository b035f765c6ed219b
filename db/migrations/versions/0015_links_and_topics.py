"""tracked links of each email, topic subscriptions (the preference center), and the topic
of an email and of a consent record

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01 05:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# journeys.topics.Frequency, frozen here as the migration saw it.
_FREQUENCIES = ("any", "weekly", "monthly")


def upgrade() -> None:
    # Every link of a sent email: the click redirect `/t/c/<token>` names (outbox, position)
    # and finds its target here, so a token never carries a URL. Clicks counted per link.
    op.create_table(
        "email_links",
        sa.Column("outbox_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("name", sa.String(length=40), nullable=True),
        sa.Column("clicks", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("first_clicked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_clicked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["outbox_id"], ["email_outbox.id"]),
        sa.PrimaryKeyConstraint("outbox_id", "position"),
    )
    # A lead's choice about one topic; no row: subscribed, at any frequency (so no
    # backfill for existing leads).
    op.create_table(
        "topic_subscriptions",
        sa.Column("lead_id", sa.String(length=36), nullable=False),
        sa.Column("topic", sa.String(length=64), nullable=False),
        sa.Column("subscribed", sa.Boolean(), nullable=False),
        sa.Column("frequency", sa.String(length=10), nullable=False, server_default="any"),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"]),
        sa.PrimaryKeyConstraint("lead_id", "topic"),
        sa.CheckConstraint(
            "frequency IN (" + ", ".join(f"'{f}'" for f in _FREQUENCIES) + ")",
            name="ck_topic_subscriptions_frequency",
        ),
    )
    # The topic a marketing email belongs to (frequency choices count per topic), and the
    # topic a consent record is about (None: all marketing email).
    op.add_column("email_outbox", sa.Column("topic", sa.String(length=64), nullable=True))
    op.create_index("ix_email_outbox_lead_topic", "email_outbox", ["lead_id", "topic", "sent_at"])
    op.add_column("consent_records", sa.Column("topic", sa.String(length=64), nullable=True))


def downgrade() -> None:
    op.drop_column("consent_records", "topic")
    op.drop_index("ix_email_outbox_lead_topic", table_name="email_outbox")
    op.drop_column("email_outbox", "topic")
    op.drop_table("topic_subscriptions")
    op.drop_table("email_links")
