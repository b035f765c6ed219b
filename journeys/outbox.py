"""The statuses of an email's outbox row (`db.models.OutboxEmail.status`).

A row is written `pending` before the send and committed `sent` just before the SMTP
server takes the final dot; a send the server refuses for good is `bounced`, one that no
retry can deliver (an address SMTP can't carry) `failed`. A StrEnum equals its string,
so the column stays a plain string: the values here are the ones stored.
"""

from __future__ import annotations

from enum import StrEnum


class OutboxStatus(StrEnum):
    """Where one outbox row's email stands. Only `sent` counts as delivered."""

    PENDING = "pending"  # recorded, not (yet) accepted by the SMTP server
    SENT = "sent"
    BOUNCED = "bounced"  # a permanent delivery failure: the address is suppressed
    FAILED = "failed"  # undeliverable as it stands (not ASCII): never retried
