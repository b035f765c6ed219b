"""ORM models of the application data.

Personal data (email, names, company facts) lives only in `leads`; everything else refers
to a lead by its id, so erasure has one table to clean. The one exception is transient:
`enrollment_job_rows` stages a bulk import's rows until each chunk is enrolled, then
deletes them.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, overload

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from journeys.handover import HandoverStatus
from journeys.outbox import OutboxStatus


def utcnow() -> datetime:
    return datetime.now(UTC)


@overload
def as_utc(moment: datetime) -> datetime: ...
@overload
def as_utc(moment: None) -> None: ...
def as_utc(moment: datetime | None) -> datetime | None:
    """A datetime read back from the database, made timezone-aware: SQLite hands back naive
    datetimes (PostgreSQL doesn't); everything Nurture stores is UTC."""
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


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
    # The lead's id in the marketer's own system (CRM, CSV import); unique when given.
    external_id: Mapped[str | None] = mapped_column(String(200), unique=True, index=True)
    first_name: Mapped[str | None] = mapped_column(String(100))
    last_name: Mapped[str | None] = mapped_column(String(100))
    company: Mapped[str | None] = mapped_column(String(200))
    title: Mapped[str | None] = mapped_column(String(200))
    company_size: Mapped[int | None]
    industry: Mapped[str | None] = mapped_column(String(100))
    country: Mapped[str | None] = mapped_column(String(2))
    timezone: Mapped[str | None] = mapped_column(String(64))
    persona: Mapped[str | None] = mapped_column(String(64))
    # The score as last computed (fit + behaviour, which includes `score_adjustment`).
    score: Mapped[int] = mapped_column(default=0, server_default="0")
    fit_score: Mapped[int] = mapped_column(default=0, server_default="0")
    behaviour_score: Mapped[int] = mapped_column(default=0, server_default="0")
    # Points journeys added by hand (`set` steps with add_score).
    score_adjustment: Mapped[int] = mapped_column(default=0, server_default="0")
    scored_at: Mapped[datetime | None]
    properties: Mapped[dict[str, Any]] = mapped_column(default=dict)
    lifecycle_stage: Mapped[str] = mapped_column(String(20), default="lead")
    account_id: Mapped[str | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    # The sales rep the lead is routed to (a rep id of journeys.sales_team).
    owner: Mapped[str | None] = mapped_column(String(64), index=True)
    # MQL cycles so far: a handover is keyed by (lead, cycle).
    mql_cycles: Mapped[int] = mapped_column(default=0, server_default="0")
    rejections: Mapped[int] = mapped_column(default=0, server_default="0")
    # After a rejection: no MQL before this moment; behaviour before `behaviour_reset_at`
    # counts only `behaviour_carryover` of its points.
    mql_blocked_until: Mapped[datetime | None]
    behaviour_reset_at: Mapped[datetime | None]
    behaviour_carryover: Mapped[float] = mapped_column(default=1.0, server_default="1.0")
    # Running behaviour totals (`journeys.behaviour_tally`): scoring folds in only the
    # events not yet tallied. None: rebuilt from every event at the next rescore.
    behaviour_tally: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Marketing consent (journeys.consent.ConsentStatus). Only `confirmed` receives
    # marketing email; the check is made again at the moment of sending.
    consent_status: Mapped[str] = mapped_column(
        String(20), default="pending", server_default="pending"
    )
    # An out-of-office reply said the lead is away: no journey email before this moment.
    mail_held_until: Mapped[datetime | None]
    # How the lead came to be when not by an enrollment (`out-of-office`: a deputy named
    # in another lead's auto-reply).
    source: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    erased_at: Mapped[datetime | None]


class Account(Base):
    """A company, found from its contacts' email domain (account-based marketing)."""

    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    domain: Mapped[str] = mapped_column(String(253), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    owner: Mapped[str | None] = mapped_column(String(64))
    score: Mapped[int] = mapped_column(default=0, server_default="0")
    # Set once, when the combined engagement of its contacts first passes the threshold.
    qualified_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Suppression(Base):
    """An address that must not receive marketing email, kept without the address: the key
    is a keyed hash of it (`journeys.consent.address_hash`), so the entry outlives the
    lead's erasure and still stops a later import from mailing the person again."""

    __tablename__ = "suppressions"

    address_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    # unsubscribed, bounced, complained, suppressed (journeys.consent.SuppressionReason)
    reason: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime] = mapped_column(default=utcnow)


class ConsentRecord(Base):
    """Evidence of a consent event: what, when, from where, under which consent text."""

    __tablename__ = "consent_records"
    __table_args__ = (Index("ix_consent_records_lead", "lead_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    lead_id: Mapped[str] = mapped_column(ForeignKey("leads.id"))
    # journeys.consent.ConsentAction
    action: Mapped[str] = mapped_column(String(40))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    source: Mapped[str | None] = mapped_column(String(200))
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    text_version: Mapped[str | None] = mapped_column(String(64))
    # The topic the record is about (journeys.topics); None: all marketing email.
    topic: Mapped[str | None] = mapped_column(String(64))


class ScoreRecord(Base):
    """A lead's score each time it changed, with the contributions that made it up."""

    __tablename__ = "score_history"
    __table_args__ = (Index("ix_score_history_lead", "lead_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    lead_id: Mapped[str] = mapped_column(ForeignKey("leads.id"))
    at: Mapped[datetime]
    model: Mapped[str] = mapped_column(String(64))
    fit: Mapped[int]
    behaviour: Mapped[int]
    total: Mapped[int]
    cause: Mapped[str] = mapped_column(String(200))
    contributions: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)


class LeadUpdate(Base):
    """Marks a journey's `set` step as applied, so that a retry does not apply it twice."""

    __tablename__ = "lead_updates"

    idempotency_key: Mapped[str] = mapped_column(String(300), primary_key=True)
    lead_id: Mapped[str] = mapped_column(ForeignKey("leads.id"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class SalesFeedbackRecord(Base):
    """What sales said about a lead, and the stage change it caused."""

    __tablename__ = "sales_feedback"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(300), unique=True)
    lead_id: Mapped[str] = mapped_column(ForeignKey("leads.id"), index=True)
    outcome: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(String(500))
    # The rep the feedback is for, and who gave it: the key's holder (`sales:kim`, `sales`
    # for a manager's key, `admin`, `crm`).
    rep: Mapped[str | None] = mapped_column(String(64))
    actor: Mapped[str | None] = mapped_column(String(200))
    from_stage: Mapped[str] = mapped_column(String(20))
    to_stage: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime] = mapped_column(default=utcnow)


class FeedbackNote(Base):
    """The free text of a piece of sales feedback (a rejection reason). Stored here by the
    API and passed to the lead workflow by id, so no free text enters workflow history;
    erased with the lead."""

    __tablename__ = "feedback_notes"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    lead_id: Mapped[str] = mapped_column(ForeignKey("leads.id"), index=True)
    text: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookReceipt(Base):
    """A signed inbound webhook already taken: the same signature again is a replay."""

    __tablename__ = "webhook_receipts"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class InboxSession(Base):
    """A signed-in sales inbox session, held server-side so signing out ends it."""

    __tablename__ = "inbox_sessions"

    # SHA-256 of the session token in the cookie: the database never holds a usable token.
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_fingerprint: Mapped[str] = mapped_column(String(64))
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class RoutingCursor(Base):
    """The round-robin position of a routing rule set (advanced atomically)."""

    __tablename__ = "routing_cursors"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(default=0)


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
    # When the current run ended (None: running); segments' `in_journey` read it.
    completed_at: Mapped[datetime | None]


class SegmentMembership(Base):
    """A lead in a segment now (a row per member), kept by the lead's workflow."""

    __tablename__ = "segment_memberships"
    # Members by page: by entry (the API), by lead id (a scheduled trigger's pages).
    __table_args__ = (
        Index("ix_segment_memberships_segment_entered", "segment", "entered_at", "lead_id"),
        Index("ix_segment_memberships_segment_lead", "segment", "lead_id"),
    )

    lead_id: Mapped[str] = mapped_column(ForeignKey("leads.id"), primary_key=True)
    segment: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)
    entered_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class SegmentTransition(Base):
    """A lead entered or left a segment: when, and what changed (the history of
    memberships)."""

    __tablename__ = "segment_transitions"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    lead_id: Mapped[str] = mapped_column(ForeignKey("leads.id"), index=True)
    segment: Mapped[str] = mapped_column(String(64))
    change: Mapped[str] = mapped_column(String(10))  # SegmentChange: entered, left
    at: Mapped[datetime] = mapped_column(default=utcnow)
    cause: Mapped[str] = mapped_column(String(200))


class TriggerFiring(Base):
    """A trigger of `journey` fired for a lead because of `cause_key` (an event id, a
    segment entry, a stage change): unique, so a repeat of the cause starts nothing twice."""

    __tablename__ = "trigger_firings"
    __table_args__ = (
        UniqueConstraint("journey", "lead_id", "cause_key", name="uq_trigger_firing"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    journey: Mapped[str] = mapped_column(String(100))
    lead_id: Mapped[str] = mapped_column(ForeignKey("leads.id"), index=True)
    cause_key: Mapped[str] = mapped_column(String(300))
    trigger: Mapped[str] = mapped_column(String(200))  # what fired, e.g. "segment_entry:x"
    fired_at: Mapped[datetime] = mapped_column(default=utcnow)
    workflow_id: Mapped[str | None] = mapped_column(String(200))
    outcome: Mapped[str | None] = mapped_column(String(30))  # enrolled, already_enrolled


class InboundMessage(Base):
    """A message that came back (a bounce, a complaint, an automatic or a human reply),
    stored as received before the listener answered 250, so nothing is lost if processing
    fails; processed once by its workflow. Holds personal data: erased with the lead."""

    __tablename__ = "inbound_messages"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    # Message-ID (or a digest of the content when there is none): a redelivery is one row.
    message_key: Mapped[str] = mapped_column(String(300), unique=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    envelope_from: Mapped[str] = mapped_column(String(320), default="")
    recipients: Mapped[list[str]] = mapped_column(JSON, default=list)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(20), default="received")  # InboundStatus
    kind: Mapped[str | None] = mapped_column(String(20))  # journeys.inbound_mail.InboundKind
    outbox_id: Mapped[int | None] = mapped_column(index=True)
    lead_id: Mapped[str | None] = mapped_column(String(36), index=True)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    processed_at: Mapped[datetime | None]
    # journeys.esp_feedback.InboundSource: the SMTP listener, or which provider's webhook
    # (then `raw` is the provider's event as JSON, and `message_key` its event id).
    source: Mapped[str] = mapped_column(String(20), default="smtp", server_default="smtp")


class EngagementEvent(Base):
    """Something a lead did (open, click, download, visit, …), as reported to the API."""

    __tablename__ = "engagement_events"
    __table_args__ = (
        UniqueConstraint("lead_id", "event_id", name="uq_engagement_lead_event"),
        # Segments read a lead's events of a type within a window, or its latest of one.
        Index("ix_engagement_lead_type_time", "lead_id", "type", "occurred_at"),
        # The API's sweep looks for events stored but never signalled: there are few.
        Index(
            "ix_engagement_unsignalled", "received_at",
            postgresql_where=text("signalled_at IS NULL"),
            sqlite_where=text("signalled_at IS NULL"),
        ),
        # A rescore reads only its lead's untallied events: a small index of just those.
        Index(
            "ix_engagement_untallied", "lead_id",
            postgresql_where=text("NOT tallied"), sqlite_where=text("NOT tallied"),
        ),
    )  # fmt: skip

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    lead_id: Mapped[str] = mapped_column(ForeignKey("leads.id"), index=True)
    event_id: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(40))
    occurred_at: Mapped[datetime]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Set once the event reached the lead's journeys: a repeat is then not signalled again.
    signalled_at: Mapped[datetime | None]
    properties: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Folded into the lead's `behaviour_tally` (its points are in the running totals).
    tallied: Mapped[bool] = mapped_column(default=False, server_default=false())


class OutboxEmail(Base):
    """One email a journey step sends, keyed so that it goes out at most once.

    The activity records the row, sends, then marks it sent; a retry that finds it sent
    returns the recorded result instead of sending again.
    """

    __tablename__ = "email_outbox"
    __table_args__ = (
        Index("ix_email_outbox_lead", "lead_id", "created_at"),
        Index("ix_email_outbox_lead_topic", "lead_id", "topic", "sent_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(300), unique=True)
    lead_id: Mapped[str] = mapped_column(ForeignKey("leads.id"))
    workflow_id: Mapped[str] = mapped_column(String(200))
    step_id: Mapped[str] = mapped_column(String(100))
    template: Mapped[str] = mapped_column(String(200))
    message_id: Mapped[str] = mapped_column(String(200))
    # journeys.outbox.OutboxStatus
    status: Mapped[str] = mapped_column(String(20), default=OutboxStatus.PENDING)
    subject: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    # The topic of a marketing email (journeys.topics); None: not marketing (a
    # confirmation, a note to a rep) or sent before topics existed.
    topic: Mapped[str | None] = mapped_column(String(64))


class EmailLink(Base):
    """A link of a sent email: `/t/c/<token>` names (outbox id, position) and redirects to
    `url`, so no token carries a target. Written with the email's `sent` status; clicks
    counted here (every click; the engagement event is recorded once per link)."""

    __tablename__ = "email_links"

    outbox_id: Mapped[int] = mapped_column(ForeignKey("email_outbox.id"), primary_key=True)
    position: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    # The template's named link it came from (`links.whitepaper` …), if any.
    name: Mapped[str | None] = mapped_column(String(40))
    clicks: Mapped[int] = mapped_column(default=0, server_default="0")
    first_clicked_at: Mapped[datetime | None]
    last_clicked_at: Mapped[datetime | None]


class TopicSubscription(Base):
    """A lead's own choice about one topic (journeys.topics). No row: subscribed at any
    frequency, so a lead with confirmed consent gets every topic until it opts out."""

    __tablename__ = "topic_subscriptions"
    __table_args__ = (
        CheckConstraint(
            "frequency IN ('any', 'weekly', 'monthly')", name="ck_topic_subscriptions_frequency"
        ),
    )

    lead_id: Mapped[str] = mapped_column(ForeignKey("leads.id"), primary_key=True)
    topic: Mapped[str] = mapped_column(String(64), primary_key=True)
    subscribed: Mapped[bool]
    # journeys.topics.Frequency
    frequency: Mapped[str] = mapped_column(String(10), default="any", server_default="any")
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    source: Mapped[str | None] = mapped_column(String(200))


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
    """A lead (one per MQL cycle) or an account (once) handed to sales.

    With the built-in CRM this row is the CRM record; with the webhook adapter it is the
    outbox of the delivery (`delivered_at` set once the CRM answered 2xx).
    """

    __tablename__ = "crm_handovers"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(300), unique=True)
    kind: Mapped[str] = mapped_column(String(10), default="lead", server_default="lead")
    lead_id: Mapped[str | None] = mapped_column(ForeignKey("leads.id"), index=True)
    account_id: Mapped[str | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    cycle: Mapped[int | None]
    reason: Mapped[str] = mapped_column(String(200))
    owner: Mapped[str | None] = mapped_column(String(64))
    routing_rule: Mapped[str | None] = mapped_column(String(40))
    score: Mapped[int | None]
    # journeys.handover.HandoverStatus
    status: Mapped[str] = mapped_column(String(20), default=HandoverStatus.OPEN)
    adapter: Mapped[str] = mapped_column(String(20), default="builtin", server_default="builtin")
    delivered_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class EnrollmentJob(Base):
    """A bulk enrollment (JSON array or CSV upload), enrolled in the background by an
    `EnrollmentJobWorkflow`; the rows rejected at upload are kept as `errors`."""

    __tablename__ = "enrollment_jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    journey: Mapped[str] = mapped_column(String(100))
    journey_version: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(10))  # json | csv
    status: Mapped[str] = mapped_column(String(20), default="running")
    total_rows: Mapped[int]
    valid_rows: Mapped[int]
    chunks: Mapped[int]
    # Rows whose new lead the store phase wrote in bulk (the rest are written one by one
    # as their chunk is enrolled, and counted in `EnrollmentJobChunk.stored`).
    stored_rows: Mapped[int] = mapped_column(default=0, server_default="0")
    # When its first chunk began to be enrolled: the store phase was over by then.
    starting_at: Mapped[datetime | None]
    # [{"line": 7, "field": "email", "reason": "…"}]: never the rejected values themselves.
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    consent: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class EnrollmentJobRow(Base):
    """A valid row of a bulk import waiting to be enrolled; deleted with its chunk's result."""

    __tablename__ = "enrollment_job_rows"

    job_id: Mapped[str] = mapped_column(ForeignKey("enrollment_jobs.id"), primary_key=True)
    line: Mapped[int] = mapped_column(primary_key=True)
    chunk: Mapped[int] = mapped_column(index=True)
    lead: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Set by the store phase when it wrote the row's lead in bulk: the chunk then only
    # starts its journey (and asks for a double opt-in when `double_opt_in`).
    lead_id: Mapped[str | None] = mapped_column(String(36))
    double_opt_in: Mapped[bool] = mapped_column(default=False, server_default=false())


class EnrollmentJobChunk(Base):
    """What enrolling one chunk of a job did; written once, with its rows deleted."""

    __tablename__ = "enrollment_job_chunks"

    job_id: Mapped[str] = mapped_column(ForeignKey("enrollment_jobs.id"), primary_key=True)
    chunk: Mapped[int] = mapped_column(primary_key=True)
    rows: Mapped[int]
    # Rows of this chunk whose lead was written one by one here (not by the store phase).
    stored: Mapped[int] = mapped_column(default=0, server_default="0")
    enrolled: Mapped[int]
    already_enrolled: Mapped[int]
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # Rows enrolled without any email because the address is suppressed:
    # [{"line": 7, "reason": "unsubscribed"}].
    suppressed: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    done_at: Mapped[datetime] = mapped_column(default=utcnow)


class Broadcast(Base):
    """One email to a whole audience (journeys/broadcasts.py): a segment, or every lead
    subscribed to `topic`. The counts live in its recipients; no personal data here."""

    __tablename__ = "broadcasts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    template: Mapped[str] = mapped_column(String(200))
    segment: Mapped[str | None] = mapped_column(String(64))
    # The topic the message belongs to; the audience too when there is no segment.
    topic: Mapped[str] = mapped_column(String(64))
    send_at: Mapped[datetime | None]
    local_time: Mapped[str | None] = mapped_column(String(5))  # "09:00" in each lead's zone
    rate_per_second: Mapped[float | None]
    ab_test: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # AbTestSpec
    ab_result: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # winner, rates, p
    status: Mapped[str] = mapped_column(String(20), default="scheduled")  # BroadcastStatus
    audience: Mapped[int | None]  # set when the audience is snapshotted
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class BroadcastRecipient(Base):
    """One lead of a broadcast's audience, snapshotted when it started sending, in a
    shuffled order (`position`); what happened to its message."""

    __tablename__ = "broadcast_recipients"
    __table_args__ = (
        UniqueConstraint("broadcast_id", "lead_id"),
        Index("ix_broadcast_recipients_due", "broadcast_id", "status", "due_at"),
    )

    broadcast_id: Mapped[str] = mapped_column(ForeignKey("broadcasts.id"), primary_key=True)
    position: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[str] = mapped_column(String(36))
    variant: Mapped[int | None]  # the A/B subject it got; None: the winner (or no test)
    due_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(20), default="pending")  # RecipientStatus
    reason: Mapped[str | None] = mapped_column(String(200))  # SkipReason, or the server's reply
    attempts: Mapped[int] = mapped_column(default=0)
    outbox_id: Mapped[int | None]
