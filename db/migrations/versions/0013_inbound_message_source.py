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
    # Rows before this revision all came through the SMTP listener. Batch mode: SQLite (the
    # demo database) can't add a constraint to an existing table in place.
    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("source", sa.String(length=20), nullable=False, server_default="smtp")
        )
        batch_op.create_check_constraint(
            "ck_inbound_messages_source",
            "source IN (" + ", ".join(f"'{s}'" for s in _SOURCES) + ")",
        )


def downgrade() -> None:
    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.drop_constraint("ck_inbound_messages_source", type_="check")
        batch_op.drop_column("source")
