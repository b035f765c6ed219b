"""ORM models of the application data.

Personal data (email, names, company facts) lives only in `leads`; everything else refers
to a lead by its id, so erasure has one table to clean.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


class Base(DeclarativeBase):
    """Declarative base; `type_annotation_map` keeps datetimes timezone-aware everywhere."""

    type_annotation_map = {datetime: DateTime(timezone=True), dict[str, Any]: JSON}


class Lead(Base):
    """A person in a buyer journey; the only table holding personal data."""

    __tablename__ = "leads"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    email: Mapped[str | None] = mapped_column(String(320), unique=True)
    first_name: Mapped[str | None] = mapped_column(String(100))
    last_name: Mapped[str | None] = mapped_column(String(100))
    company: Mapped[str | None] = mapped_column(String(200))
    title: Mapped[str | None] = mapped_column(String(200))
    company_size: Mapped[int | None]
    industry: Mapped[str | None] = mapped_column(String(100))
    country: Mapped[str | None] = mapped_column(String(2))
    timezone: Mapped[str | None] = mapped_column(String(64))
    persona: Mapped[str | None] = mapped_column(String(64))
    # Points journeys and feedback added by hand (`set` steps); model scores come on top.
    score: Mapped[int] = mapped_column(default=0, server_default="0")
    properties: Mapped[dict[str, Any]] = mapped_column(default=dict)
    lifecycle_stage: Mapped[str] = mapped_column(String(20), default="lead")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    erased_at: Mapped[datetime | None]


class Enrollment(Base):
    """A lead's entry into a journey; one Temporal workflow each."""

    __tablename__ = "enrollments"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    lead_id: Mapped[str] = mapped_column(ForeignKey("leads.id"), index=True)
    journey: Mapped[str] = mapped_column(String(100))
    journey_version: Mapped[str] = mapped_column(String(64))
    workflow_id: Mapped[str] = mapped_column(String(200), unique=True)
    enrolled_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Re-entrant journeys run again under the same workflow id: one row, counted entries.
    run_id: Mapped[str | None] = mapped_column(String(64))
    entries: Mapped[int] = mapped_column(default=1, server_default="1")
    last_enrolled_at: Mapped[datetime | None]


class EngagementEvent(Base):
    """Something a lead did (open, click, download, visit, …), as reported to the API."""

    __tablename__ = "engagement_events"
    __table_args__ = (UniqueConstraint("lead_id", "event_id", name="uq_engagement_lead_event"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    lead_id: Mapped[str] = mapped_column(ForeignKey("leads.id"), index=True)
    event_id: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(40))
    occurred_at: Mapped[datetime]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Set once the event reached the lead's journeys: a repeat is then not signalled again.
    signalled_at: Mapped[datetime | None]
    properties: Mapped[dict[str, Any]] = mapped_column(default=dict)


class OutboxEmail(Base):
    """One email a journey step sends, keyed so that it goes out at most once.

    The activity records the row, sends, then marks it sent; a retry that finds it sent
    returns the recorded result instead of sending again.
    """

    __tablename__ = "email_outbox"
    __table_args__ = (Index("ix_email_outbox_lead", "lead_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(300), unique=True)
    lead_id: Mapped[str] = mapped_column(ForeignKey("leads.id"))
    workflow_id: Mapped[str] = mapped_column(String(200))
    step_id: Mapped[str] = mapped_column(String(100))
    template: Mapped[str] = mapped_column(String(200))
    message_id: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="pending")
    subject: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]


class StageTransition(Base):
    """A change of a lead's lifecycle stage: when, from what, to what, why and by whom."""

    __tablename__ = "stage_transitions"
    __table_args__ = (Index("ix_stage_transitions_lead", "lead_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    lead_id: Mapped[str] = mapped_column(ForeignKey("leads.id"))
    from_stage: Mapped[str | None] = mapped_column(String(20))
    to_stage: Mapped[str] = mapped_column(String(20))
    cause: Mapped[str] = mapped_column(String(200))
    actor: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    idempotency_key: Mapped[str | None] = mapped_column(String(300), unique=True)


class CrmHandover(Base):
    """A lead handed to sales in the built-in CRM: one per lead and MQL cycle."""

    __tablename__ = "crm_handovers"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(300), unique=True)
    lead_id: Mapped[str] = mapped_column(ForeignKey("leads.id"), index=True)
    reason: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="open")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
