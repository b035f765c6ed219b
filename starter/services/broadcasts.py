"""Broadcasts as a marketer uses them: create one (validated in full, nothing written when
anything is wrong), list them, read one with its progress and results, pause, resume or
cancel it (docs/broadcasts.md)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator
from sqlalchemy import String, and_, cast, func, literal, select
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from db.models import Broadcast, BroadcastRecipient, ConsentRecord, EngagementEvent, as_utc
from db.writes import insert_once
from journeys.broadcasts import (
    AbTestSpec,
    BroadcastStatus,
    RecipientStatus,
    broadcast_workflow_id,
)
from journeys.consent import ConsentAction
from journeys.rendering import subject_problem, template_exists
from journeys.segments import all_segments
from journeys.topics import TOPIC_NAMES
from starter.services.errors import Problem, Refusal, TemporalUnavailable
from starter.services.input_model import InputModel
from workflows.broadcast import (
    BROADCAST_WORKFLOW,
    CONTROL_UPDATE,
    BroadcastAction,
    BroadcastControl,
    BroadcastInput,
)

DEFAULT_TOPIC = "newsletter"


class BroadcastIn(InputModel):
    """A broadcast to create: its audience is `segment` (its members, the message under
    `topic`, `newsletter` by default) or, without a segment, every lead subscribed to
    `topic`."""

    name: str = Field(min_length=1, max_length=200)
    template: str = Field(min_length=1, max_length=200, pattern=r"^[a-z0-9_/-]+$")
    segment: str | None = Field(default=None, max_length=64)
    topic: str | None = Field(default=None, max_length=64)
    send_at: datetime | None = Field(default=None, description="Start at (ISO 8601, with zone)")
    local_time: time | None = Field(
        default=None, description="Send at this time of day in each lead's zone, e.g. 09:00"
    )
    rate_per_second: float | None = Field(default=None, gt=0, le=100_000)
    ab_test: AbTestSpec | None = None

    @field_validator("template")
    @classmethod
    def _known_template(cls, name: str) -> str:
        if not template_exists(name):
            raise ValueError(f"unknown email template {name!r}")
        return name

    @field_validator("segment")
    @classmethod
    def _known_segment(cls, name: str | None) -> str | None:
        if name is not None and name not in all_segments():
            raise ValueError(
                f"unknown segment {name!r}; known: {', '.join(sorted(all_segments()))}"
            )
        return name

    @field_validator("topic")
    @classmethod
    def _known_topic(cls, name: str | None) -> str | None:
        if name is not None and name not in TOPIC_NAMES:
            raise ValueError(f"unknown topic {name!r}; known: {', '.join(sorted(TOPIC_NAMES))}")
        return name

    @field_validator("send_at")
    @classmethod
    def _in_the_future(cls, moment: datetime | None) -> datetime | None:
        if moment is None:
            return None
        if moment.tzinfo is None:
            raise ValueError("must say its timezone, e.g. 2026-12-24T09:00:00+01:00")
        if moment < datetime.now(UTC):
            raise ValueError("is in the past")
        return moment

    @field_validator("local_time")
    @classmethod
    def _whole_minutes(cls, at: time | None) -> time | None:
        if at is not None and (at.second or at.microsecond or at.tzinfo is not None):
            raise ValueError("a local time of day in whole minutes without a zone, e.g. 09:00")
        return at

    @field_validator("ab_test")
    @classmethod
    def _subjects_render(cls, ab: AbTestSpec | None) -> AbTestSpec | None:
        for subject in ab.subjects if ab else []:
            if (problem := subject_problem(subject)) is not None:
                raise ValueError(f"subject {subject!r}: {problem}")
        return ab

    @model_validator(mode="after")
    def _has_an_audience(self) -> BroadcastIn:
        if self.segment is None and self.topic is None:
            raise ValueError("give a segment, or a topic whose subscribers get the broadcast")
        return self


class BroadcastCreated(BaseModel):
    broadcast_id: str
    status: BroadcastStatus
    workflow_id: str


class BroadcastCounts(BaseModel):
    """Where the recipients stand; `skipped` by reason."""

    audience: int | None
    pending: int = 0
    sent: int = 0
    skipped: dict[str, int] = Field(default_factory=dict)
    deferred: int = 0
    failed: int = 0
    bounced: int = 0


class BroadcastResults(BaseModel):
    """Engagement with the broadcast: unique leads."""

    unique_opens: int
    unique_clicks: int
    unsubscribes: int
    bounces: int


class BroadcastSummary(BaseModel):
    id: str
    name: str
    template: str
    segment: str | None
    topic: str
    status: BroadcastStatus
    audience: int | None
    created_at: datetime
    send_at: datetime | None


class BroadcastView(BroadcastSummary):
    """A broadcast with its progress and results (`ab_result` once a winner is picked)."""

    local_time: str | None
    rate_per_second: float | None
    ab_test: dict[str, Any] | None
    ab_result: dict[str, Any] | None
    started_at: datetime | None
    finished_at: datetime | None
    counts: BroadcastCounts
    results: BroadcastResults


class BroadcastNotFound(Problem):
    def __init__(self, broadcast_id: str) -> None:
        super().__init__(
            Refusal.NOT_FOUND, ("path", "broadcast_id"), f"no broadcast {broadcast_id!r}",
            "broadcast_not_found",
        )  # fmt: skip


class BroadcastFinished(Problem):
    def __init__(self, message: str) -> None:
        super().__init__(Refusal.CONFLICT, ("path", "action"), message, "broadcast_finished")


def broadcast_id_for(idempotency_key: str | None, caller: str) -> str:
    """A new broadcast id, or the same id for a repeated `Idempotency-Key` from the same
    caller: a client retrying a POST whose answer it lost sends the broadcast once."""
    if idempotency_key is None:
        return str(uuid.uuid4())
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"nurture:broadcast:{caller}:{idempotency_key}"))


async def create_broadcast(
    sessions: async_sessionmaker,
    client: Client,
    task_queue: str,
    spec: BroadcastIn,
    broadcast_id: str | None = None,
) -> BroadcastCreated:
    """Write the broadcast and start its workflow; nothing stays if the start fails. With
    a `broadcast_id` that exists already (a retried request), the existing one answers —
    started now if the first request died between writing it and starting it."""
    row = Broadcast(
        id=broadcast_id or str(uuid.uuid4()),
        name=spec.name,
        template=spec.template,
        segment=spec.segment,
        topic=spec.topic or DEFAULT_TOPIC,
        send_at=spec.send_at,
        local_time=spec.local_time.strftime("%H:%M") if spec.local_time else None,
        rate_per_second=spec.rate_per_second,
        ab_test=spec.ab_test.model_dump(mode="json") if spec.ab_test else None,
        status=BroadcastStatus.SCHEDULED.value,
    )
    async with sessions() as session:
        if not await insert_once(session, row):  # a retry of a request that wrote it
            existing = await session.get(Broadcast, row.id)
            assert existing is not None
            row = existing
    if row.status == BroadcastStatus.SCHEDULED.value:
        try:
            await _start(client, task_queue, row)
        except RPCError:
            async with sessions() as session:
                await session.delete(await session.get(Broadcast, row.id))
                await session.commit()
            raise TemporalUnavailable() from None
    return BroadcastCreated(
        broadcast_id=row.id, status=BroadcastStatus(row.status),
        workflow_id=broadcast_workflow_id(row.id),
    )  # fmt: skip


async def _start(client: Client, task_queue: str, row: Broadcast) -> None:
    """Start the broadcast's workflow, once: a workflow that ran already is never started
    again (a closed one would otherwise send the broadcast a second time)."""
    ab = AbTestSpec.model_validate(row.ab_test) if row.ab_test else None
    plan = BroadcastInput(
        broadcast_id=row.id,
        send_at=as_utc(row.send_at),
        rate_per_second=row.rate_per_second,
        ab_wait=ab.wait if ab else None,
    )
    try:
        await client.start_workflow(
            BROADCAST_WORKFLOW, plan, id=broadcast_workflow_id(row.id), task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )  # fmt: skip
    except WorkflowAlreadyStartedError:
        pass


def _summary(row: Broadcast) -> dict[str, Any]:
    return {
        "id": row.id, "name": row.name, "template": row.template, "segment": row.segment,
        "topic": row.topic, "status": BroadcastStatus(row.status), "audience": row.audience,
        "created_at": as_utc(row.created_at), "send_at": as_utc(row.send_at),
    }  # fmt: skip


async def list_broadcasts(sessions: async_sessionmaker, limit: int = 100) -> list[BroadcastSummary]:
    """The latest broadcasts, newest first."""
    async with sessions() as session:
        rows = await session.execute(
            select(Broadcast).order_by(Broadcast.created_at.desc()).limit(limit)
        )
        return [BroadcastSummary(**_summary(row)) for row in rows.scalars()]


async def read_broadcast(sessions: async_sessionmaker, broadcast_id: str) -> BroadcastView:
    """One broadcast with its recipients' counts and the engagement it got."""
    async with sessions() as session:
        row = await session.get(Broadcast, broadcast_id)
        if row is None:
            raise BroadcastNotFound(broadcast_id)
        by_status = await session.execute(
            select(BroadcastRecipient.status, BroadcastRecipient.reason, func.count())
            .where(BroadcastRecipient.broadcast_id == broadcast_id)
            .group_by(BroadcastRecipient.status, BroadcastRecipient.reason)
        )
        counts = BroadcastCounts(audience=row.audience)
        for status, reason, n in by_status.all():
            if status == RecipientStatus.SKIPPED:
                counts.skipped[str(reason)] = counts.skipped.get(str(reason), 0) + n
            else:
                setattr(counts, status, getattr(counts, status) + n)
        results = await _results(session, row)
    return BroadcastView(
        **_summary(row),
        local_time=row.local_time,
        rate_per_second=row.rate_per_second,
        ab_test=row.ab_test,
        ab_result=row.ab_result,
        started_at=as_utc(row.started_at),
        finished_at=as_utc(row.finished_at),
        counts=counts,
        results=results,
    )


async def _results(session: Any, row: Broadcast) -> BroadcastResults:
    sent = and_(
        BroadcastRecipient.broadcast_id == row.id,
        BroadcastRecipient.status == RecipientStatus.SENT.value,
    )
    outbox_id = cast(BroadcastRecipient.outbox_id, String)

    async def unique(event_id: Any) -> int:
        found = await session.scalar(
            select(func.count(func.distinct(BroadcastRecipient.lead_id)))
            .join(
                EngagementEvent,
                and_(EngagementEvent.lead_id == BroadcastRecipient.lead_id, event_id),
            )
            .where(sent)
        )
        return int(found or 0)

    opens = await unique(EngagementEvent.event_id == literal("open-") + outbox_id)
    clicks = await unique(EngagementEvent.event_id.like(literal("click-") + outbox_id + "-%"))
    # Unsubscribes: recipients who opted out (of everything or of a topic) after it started.
    unsubscribes = await session.scalar(
        select(func.count(func.distinct(BroadcastRecipient.lead_id)))
        .join(ConsentRecord, ConsentRecord.lead_id == BroadcastRecipient.lead_id)
        .where(
            sent,
            ConsentRecord.action == ConsentAction.UNSUBSCRIBED.value,
            ConsentRecord.at >= (row.started_at or row.created_at),
        )
    )
    bounces = await session.scalar(
        select(func.count()).where(
            BroadcastRecipient.broadcast_id == row.id,
            BroadcastRecipient.status == RecipientStatus.BOUNCED.value,
        )
    )
    return BroadcastResults(
        unique_opens=opens, unique_clicks=clicks, unsubscribes=int(unsubscribes or 0),
        bounces=int(bounces or 0),
    )  # fmt: skip


async def control_broadcast(
    sessions: async_sessionmaker, client: Client, broadcast_id: str, action: BroadcastAction
) -> BroadcastSummary:
    """Pause, resume or cancel a broadcast; answers once its workflow recorded it."""
    async with sessions() as session:
        if await session.get(Broadcast, broadcast_id) is None:
            raise BroadcastNotFound(broadcast_id)
    handle = client.get_workflow_handle(broadcast_workflow_id(broadcast_id))
    try:
        await handle.execute_update(CONTROL_UPDATE, BroadcastControl(action=action))
    except WorkflowUpdateFailedError as exc:
        raise BroadcastFinished(str(exc.cause or exc)) from None
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:  # its workflow finished
            raise BroadcastFinished("the broadcast has finished") from None
        raise TemporalUnavailable() from None
    async with sessions() as session:
        row = await session.get(Broadcast, broadcast_id)
        assert row is not None
        return BroadcastSummary(**_summary(row))
