"""`/v1/segments…`: the segments defined as code, their sizes and members."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, status

from starter.api.deps import Config, MarketingKey, Sessions, Temporal
from starter.services.segments import (
    BackfillStarted,
    SegmentMembers,
    SegmentSummary,
    SegmentView,
    backfill_progress,
    list_segments,
    read_segment,
    segment_members,
    start_backfill,
)
from workflows.segment_backfill import BackfillProgress

router = APIRouter(tags=["segments"])

SegmentName = Annotated[str, Path(max_length=64, pattern=r"^[a-z0-9-]+$")]
_UNKNOWN: dict[int | str, dict[str, Any]] = {404: {"description": "No such segment"}}


@router.get("/v1/segments", response_model=list[SegmentSummary])
async def get_segments(_: MarketingKey, sessions: Sessions) -> list[SegmentSummary]:
    """Every segment (journeys/segments) with the number of leads in it now."""
    return await list_segments(sessions)


@router.get("/v1/segments/{name}", response_model=SegmentView, responses=_UNKNOWN)
async def get_segment(name: SegmentName, _: MarketingKey, sessions: Sessions) -> SegmentView:
    """A segment's definition and size."""
    return await read_segment(sessions, name)


@router.get("/v1/segments/{name}/members", response_model=SegmentMembers, responses=_UNKNOWN)
async def get_segment_members(
    name: SegmentName,
    _: MarketingKey,
    sessions: Sessions,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> SegmentMembers:
    """The segment's members (lead ids with `entered_at`), oldest entry first, a page at a
    time: pass the answer's `next_cursor` as `cursor`."""
    return await segment_members(sessions, name, limit=limit, cursor=cursor)


@router.post(
    "/v1/segments/{name}/backfill",
    response_model=BackfillStarted,
    status_code=status.HTTP_202_ACCEPTED,
    responses=_UNKNOWN,
)
async def post_segment_backfill(
    name: SegmentName, _: MarketingKey, settings: Config, temporal: Temporal
) -> BackfillStarted:
    """Evaluate the segment over every lead in the background (after adding or changing
    it); memberships change quietly, no trigger fires. Poll `GET …/backfill`."""
    return await start_backfill(temporal, settings.task_queue, name)


@router.get(
    "/v1/segments/{name}/backfill",
    response_model=BackfillProgress,
    responses={404: {"description": "No such segment, or no backfill of its current version"}},
)
async def get_segment_backfill(
    name: SegmentName, _: MarketingKey, temporal: Temporal
) -> BackfillProgress:
    """The backfill's progress; once `done`, `members` is the segment's size."""
    return await backfill_progress(temporal, name)
