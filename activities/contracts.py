"""What workflows and activities exchange: activity names and their pydantic payloads.

Pure data, no I/O: workflows import this module. Payloads carry ids, never personal data.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from journeys.dsl import EventType

SEND_EMAIL = "send_email"


class _Contract(BaseModel):
    model_config = ConfigDict(frozen=True)


class SendEmailRequest(_Contract):
    """Send email template `template` to lead `lead_id`, once per `idempotency_key`."""

    lead_id: str
    workflow_id: str
    step_id: str
    template: str
    idempotency_key: str = Field(max_length=300)


class SendEmailResult(_Contract):
    """What became of a send request; a retry of a sent request returns the first result."""

    status: Literal["sent", "skipped"]
    message_id: str | None = None
    reason: str | None = None


class EngagementSignal(_Contract):
    """An engagement event as the lead's workflow receives it (no personal data)."""

    event_id: str = Field(min_length=1, max_length=200)
    type: EventType
    occurred_at: datetime
