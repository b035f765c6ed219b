"""`/v1/broadcasts…`: newsletters and announcements to a segment or a topic's subscribers
(marketing role): create, list, read with progress and results, pause, resume, cancel."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, status

from starter.api.auth import caller_name
from starter.api.deps import Config, MarketingKey, Sessions, Temporal
from starter.api.paths import IdempotencyKey
from starter.services.broadcasts import (
    BroadcastCreated,
    BroadcastIn,
    BroadcastSummary,
    BroadcastView,
    broadcast_id_for,
    control_broadcast,
    create_broadcast,
    list_broadcasts,
    read_broadcast,
)
from workflows.broadcast import BroadcastAction

router = APIRouter(tags=["broadcasts"])

BroadcastId = Annotated[str, Path(max_length=36, pattern=r"^[0-9a-f-]{1,36}$")]
_UNKNOWN: dict[int | str, dict[str, Any]] = {404: {"description": "No such broadcast"}}
_FINISHED: dict[int | str, dict[str, Any]] = {
    **_UNKNOWN,
    409: {"description": "The broadcast is done or cancelled"},
}


@router.post(
    "/v1/broadcasts",
    response_model=BroadcastCreated,
    status_code=status.HTTP_202_ACCEPTED,
)
async def post_broadcast(
    body: BroadcastIn,
    holder: MarketingKey,
    settings: Config,
    sessions: Sessions,
    temporal: Temporal,
    idempotency_key: IdempotencyKey = None,
) -> BroadcastCreated:
    """Create a broadcast and start sending it (at `send_at`, if given). Its audience is
    fixed when it starts sending; consent, the topic, suppression and the frequency cap
    are checked as each message goes out. A repeated `Idempotency-Key` (same caller)
    answers with the broadcast the first request created: a retry sends nothing twice."""
    broadcast_id = broadcast_id_for(idempotency_key, caller_name(holder))
    return await create_broadcast(sessions, temporal, settings.task_queue, body, broadcast_id)


@router.get("/v1/broadcasts", response_model=list[BroadcastSummary])
async def get_broadcasts(
    _: MarketingKey, sessions: Sessions, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> list[BroadcastSummary]:
    """The latest broadcasts, newest first."""
    return await list_broadcasts(sessions, limit)


@router.get("/v1/broadcasts/{broadcast_id}", response_model=BroadcastView, responses=_UNKNOWN)
async def get_broadcast(
    broadcast_id: BroadcastId, _: MarketingKey, sessions: Sessions
) -> BroadcastView:
    """A broadcast's status, counts (pending, sent, skipped by reason, deferred, failed,
    bounced), engagement (unique opens and clicks, unsubscribes, bounces) and A/B result."""
    return await read_broadcast(sessions, broadcast_id)


@router.post(
    "/v1/broadcasts/{broadcast_id}/{action}",
    response_model=BroadcastSummary,
    responses=_FINISHED,
)
async def post_broadcast_action(
    broadcast_id: BroadcastId,
    action: BroadcastAction,
    _: MarketingKey,
    sessions: Sessions,
    temporal: Temporal,
) -> BroadcastSummary:
    """`pause` (after the batch in flight), `resume`, or `cancel` (nothing more is sent
    after the batch in flight)."""
    return await control_broadcast(sessions, temporal, broadcast_id, action)
