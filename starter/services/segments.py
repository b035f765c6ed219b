"""Reading segments: the shipped definitions, their sizes and their members (kept up to
date by each lead's workflow, so reading them is a query, never a recomputation)."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import func, select, tuple_
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from db.models import SegmentMembership, as_utc
from journeys.segment_dsl import SegmentDefinition
from journeys.segments import UnknownSegmentError, all_segments, get_segment
from starter.services.errors import InvalidParameter, Problem, Refusal
from workflows.segment_backfill import (
    BACKFILL_PROGRESS_QUERY,
    SEGMENT_BACKFILL_WORKFLOW,
    BackfillInput,
    BackfillProgress,
    segment_backfill_workflow_id,
)


class UnknownSegment(Problem):
    def __init__(self, name: str) -> None:
        known = ", ".join(sorted(all_segments()))
        super().__init__(
            Refusal.NOT_FOUND, ("path", "name"), f"unknown segment {name!r}; known: {known}",
            "unknown_segment",
        )  # fmt: skip


class SegmentSummary(BaseModel):
    """A segment and how many leads are in it now."""

    name: str
    description: str
    size: int


class SegmentView(SegmentSummary):
    """A segment with its definition (as data)."""

    definition: dict[str, Any]


class SegmentMember(BaseModel):
    lead_id: str
    entered_at: datetime


class SegmentMembers(BaseModel):
    """One page of members, oldest entry first; pass `next_cursor` as `cursor`."""

    items: list[SegmentMember]
    next_cursor: str | None = Field(description="null: the last page")


async def _sizes(sessions: async_sessionmaker) -> dict[str, int]:
    async with sessions() as session:
        rows = await session.execute(
            select(SegmentMembership.segment, func.count()).group_by(SegmentMembership.segment)
        )
        return {segment: count for segment, count in rows}


async def list_segments(sessions: async_sessionmaker) -> list[SegmentSummary]:
    """Every segment with its size."""
    sizes = await _sizes(sessions)
    return [
        SegmentSummary(name=d.name, description=d.description, size=sizes.get(d.name, 0))
        for d in sorted(all_segments().values(), key=lambda d: d.name)
    ]


def _segment(name: str) -> SegmentDefinition:
    try:
        return get_segment(name)
    except UnknownSegmentError:
        raise UnknownSegment(name) from None


async def read_segment(sessions: async_sessionmaker, name: str) -> SegmentView:
    """One segment: its definition and size."""
    definition = _segment(name)
    size = (await _sizes(sessions)).get(name, 0)
    return SegmentView(
        name=definition.name,
        description=definition.description,
        size=size,
        definition=definition.condition.model_dump(mode="json", by_alias=True),
    )


def _cursor(member: SegmentMember) -> str:
    raw = json.dumps([member.entered_at.isoformat(), member.lead_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _after(cursor: str) -> tuple[datetime, str]:
    try:
        at, lead_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return datetime.fromisoformat(at), str(lead_id)[:36]
    except (ValueError, TypeError):
        raise InvalidParameter(("query", "cursor"), "not a cursor this list gave") from None


async def segment_members(
    sessions: async_sessionmaker, name: str, *, limit: int, cursor: str | None
) -> SegmentMembers:
    """The segment's members, a page at a time (by entry time, then lead id)."""
    _segment(name)
    query = select(SegmentMembership.lead_id, SegmentMembership.entered_at).where(
        SegmentMembership.segment == name
    )
    if cursor is not None:
        at, lead_id = _after(cursor)
        key = tuple_(SegmentMembership.entered_at, SegmentMembership.lead_id)
        query = query.where(key > tuple_(at, lead_id))
    query = query.order_by(SegmentMembership.entered_at, SegmentMembership.lead_id)
    async with sessions() as session:
        rows = (await session.execute(query.limit(limit + 1))).all()
    items = [SegmentMember(lead_id=lead_id, entered_at=as_utc(at) or at) for lead_id, at in rows][
        :limit
    ]
    more = len(rows) > limit
    return SegmentMembers(items=items, next_cursor=_cursor(items[-1]) if more else None)


class LeadSegment(BaseModel):
    """A segment the lead is in, since when."""

    segment: str
    entered_at: datetime


async def segments_of(sessions: async_sessionmaker, lead_id: str) -> list[LeadSegment]:
    """The segments a lead is in now, by name."""
    async with sessions() as session:
        rows = await session.execute(
            select(SegmentMembership.segment, SegmentMembership.entered_at)
            .where(SegmentMembership.lead_id == lead_id)
            .order_by(SegmentMembership.segment)
        )
        return [LeadSegment(segment=s, entered_at=as_utc(at) or at) for s, at in rows]


# A query needs a worker: without one, answer 503 soon rather than hold the request.
QUERY_TIMEOUT = timedelta(seconds=5)


class BackfillStarted(BaseModel):
    """A backfill of the segment's current version: its workflow, and whether this request
    started it (`started`) or found it running (`running`)."""

    segment: str
    version: str
    workflow_id: str
    status: str


async def start_backfill(client: Client, task_queue: str, name: str) -> BackfillStarted:
    """Evaluate the segment over every lead in the background (once per version at a time)."""
    definition = _segment(name)
    workflow_id = segment_backfill_workflow_id(name, definition.version)
    status = "started"
    try:
        await client.start_workflow(
            SEGMENT_BACKFILL_WORKFLOW,
            BackfillInput(segment=name),
            id=workflow_id,
            task_queue=task_queue,
        )
    except WorkflowAlreadyStartedError:
        status = "running"
    return BackfillStarted(
        segment=name, version=definition.version, workflow_id=workflow_id, status=status
    )


async def backfill_progress(client: Client, name: str) -> BackfillProgress:
    """How far the backfill of the segment's current version has come (its size once done)."""
    definition = _segment(name)
    handle = client.get_workflow_handle(segment_backfill_workflow_id(name, definition.version))
    try:
        progress = await handle.query(
            BACKFILL_PROGRESS_QUERY, result_type=BackfillProgress, rpc_timeout=QUERY_TIMEOUT
        )
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
        progress = None
    if progress is None:
        raise Problem(
            Refusal.NOT_FOUND, ("path", "name"), f"no backfill of {name!r} (this version)",
            "backfill_not_found",
        )  # fmt: skip
    return progress
