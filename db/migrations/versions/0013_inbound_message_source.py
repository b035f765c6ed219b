"""inbound messages: where each came from (the SMTP listener or an email provider's webhook)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 03:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# journeys.esp_feedback.InboundSource, frozen here as the migration saw it.
_SOURCES = ("smtp", "ses", "sendgrid", "postmark", "mailgun")


def upgrade() -> None:
    # Rows before this revision all came through the SMTP listener.
    op.add_column(
        "inbound_messages",
        sa.Column("source", sa.String(length=20), nullable=False, server_default="smtp"),
    )
    op.create_check_constraint(
        "ck_inbound_messages_source",
        "inbound_messages",
        "source IN (" + ", ".join(f"'{s}'" for s in _SOURCES) + ")",
    )


def downgrade() -> None:
    op.drop_constraint("ck_inbound_messages_source", "inbound_messages", type_="check")
    op.drop_column("inbound_messages", "source")
