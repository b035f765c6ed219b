"""`GET /v1/leads`: filters, an allow-listed sort and cursor pagination (keyset, stable
under inserts), shared with the CSV export."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import Select, and_, or_, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from db.models import Enrollment, Lead
from journeys.dsl import LifecycleStage
from starter.services.errors import InvalidParameter

SortKey = Literal["created_at", "-created_at", "score", "-score"]


class LeadFilter(BaseModel):
    """What to list; every field is optional and they combine with AND."""

    model_config = ConfigDict(extra="forbid")

    stage: LifecycleStage | None = Field(default=None, description="Lifecycle stage")
    score_min: int | None = Field(default=None, ge=-10_000, le=10_000)
    score_max: int | None = Field(default=None, ge=-10_000, le=10_000)
    journey: str | None = Field(default=None, max_length=100, pattern=r"^[a-z0-9-]+$")
    owner: str | None = Field(default=None, max_length=64, pattern=r"^[a-z0-9_-]+$")
    account_id: str | None = Field(default=None, pattern=r"^[0-9a-f-]{36}$")
    sort: SortKey = Field(default="-created_at", description="created_at or score, - for desc")

    @model_validator(mode="after")
    def _range_is_ordered(self) -> LeadFilter:
        if (
            self.score_min is not None
            and self.score_max is not None
            and self.score_min > self.score_max
        ):
            raise InvalidParameter(("query", "score_min"), "score_min is above score_max")
        return self


class LeadListQuery(LeadFilter):
    """`GET /v1/leads`: the filters, a page size and where to continue."""

    limit: int = Field(default=50, ge=1, le=500, description="Leads per page")
    cursor: str | None = Field(
        default=None, max_length=500, description="`next_cursor` of the previous page"
    )


class LeadIdentity(BaseModel):
    """Who a lead is and where it stands: what a list entry and the full view share."""

    id: str
    external_id: str | None
    email: str | None
    first_name: str | None
    last_name: str | None
    company: str | None
    title: str | None
    lifecycle_stage: LifecycleStage


class LeadSummary(LeadIdentity):
    """A lead in a list."""

    score: int
    fit_score: int
    behaviour_score: int
    owner: str | None
    account_id: str | None
    created_at: datetime


# The fields a lead's list entry (`LeadSummary`) and its full view (`LeadView`) both show,
# as the Lead row holds them.
LEAD_FACTS = (
    "id", "external_id", "email", "first_name", "last_name", "company", "title",
    "lifecycle_stage", "owner", "account_id", "created_at",
)  # fmt: skip


def lead_facts(lead: Lead) -> dict[str, Any]:
    """The row's `LEAD_FACTS`, by name."""
    return {name: getattr(lead, name) for name in LEAD_FACTS}


class LeadPage(BaseModel):
    """One page of leads; pass `next_cursor` as `cursor` for the next (null: the last)."""

    items: list[LeadSummary]
    next_cursor: str | None


def _column(sort: SortKey) -> Any:
    return Lead.created_at if sort.endswith("created_at") else Lead.score


def _encode_cursor(sort: SortKey, lead: Lead) -> str:
    value: Any = lead.created_at.isoformat() if sort.endswith("created_at") else lead.score
    raw = json.dumps([sort, value, lead.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(sort: SortKey, cursor: str) -> tuple[Any, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        cursor_sort, value, lead_id = json.loads(raw)
        if cursor_sort != sort or not isinstance(lead_id, str) or len(lead_id) > 36:
            raise ValueError("sort changed")
        if sort.endswith("created_at"):
            value = datetime.fromisoformat(value)
        # A score is a 32-bit integer in the database (and a bool is no score).
        elif isinstance(value, bool) or not isinstance(value, int) or abs(value) >= 2**31:
            raise ValueError("score")
    except (ValueError, TypeError, OverflowError, binascii.Error, UnicodeDecodeError):
        raise InvalidParameter(
            ("query", "cursor"), "not a cursor from this listing (with this sort)"
        ) from None
    return value, lead_id


def filtered(filters: LeadFilter, rep: str | None) -> Select[Lead]:
    """The leads matching `filters`, limited to `rep`'s leads when a rep asks."""
    query = select(Lead).where(Lead.erased_at.is_(None))
    if filters.stage is not None:
        query = query.where(Lead.lifecycle_stage == filters.stage.value)
    if filters.score_min is not None:
        query = query.where(Lead.score >= filters.score_min)
    if filters.score_max is not None:
        query = query.where(Lead.score <= filters.score_max)
    if filters.owner is not None:
        query = query.where(Lead.owner == filters.owner)
    if rep is not None:
        query = query.where(Lead.owner == rep)
    if filters.account_id is not None:
        query = query.where(Lead.account_id == filters.account_id)
    if filters.journey is not None:
        enrolled = select(Enrollment.lead_id).where(Enrollment.journey == filters.journey)
        query = query.where(Lead.id.in_(enrolled))
    column = _column(filters.sort)
    if filters.sort.startswith("-"):
        return query.order_by(column.desc(), Lead.id.desc())
    return query.order_by(column.asc(), Lead.id.asc())


async def list_leads(
    sessions: async_sessionmaker,
    filters: LeadFilter,
    *,
    rep: str | None,
    limit: int,
    cursor: str | None,
) -> LeadPage:
    """One page of matching leads, after `cursor`."""
    query = filtered(filters, rep)
    if cursor is not None:
        value, lead_id = _decode_cursor(filters.sort, cursor)
        column = _column(filters.sort)
        if filters.sort.startswith("-"):
            after = or_(column < value, and_(column == value, Lead.id < lead_id))
        else:
            after = or_(column > value, and_(column == value, Lead.id > lead_id))
        query = query.where(after)
    async with sessions() as session:
        leads = list((await session.execute(query.limit(limit + 1))).scalars())
    more = len(leads) > limit
    leads = leads[:limit]
    return LeadPage(
        items=[summary(lead) for lead in leads],
        next_cursor=_encode_cursor(filters.sort, leads[-1]) if more else None,
    )


async def all_leads(
    sessions: async_sessionmaker, filters: LeadFilter, *, rep: str | None, batch: int = 500
) -> AsyncIterator[LeadSummary]:
    """Every matching lead, a page at a time (for exports)."""
    cursor = None
    while True:
        page = await list_leads(sessions, filters, rep=rep, limit=batch, cursor=cursor)
        for item in page.items:
            yield item
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def summary(lead: Lead) -> LeadSummary:
    """The lead as a list shows it."""
    return LeadSummary(
        **lead_facts(lead),
        score=lead.score,
        fit_score=lead.fit_score,
        behaviour_score=lead.behaviour_score,
    )
