"""Routes that read: lead lists, the CSV export, the funnel (JSON and SVG), journey
statistics and the journey catalogue."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel

from journeys.registry import all_journeys, all_triggers
from journeys.triggers import label
from reporting.csv_export import csv_lines
from reporting.deliverability import SourceRates
from reporting.funnel import FunnelReport
from reporting.funnel_svg import funnel_svg
from reporting.journey_stats import JourneyStats
from starter.api.deps import MarketingKey, MarketingOrSalesKey, Sessions
from starter.services.analytics import (
    DeliverabilityQuery,
    FunnelQuery,
    deliverability_report,
    funnel_report,
    journey_report,
)
from starter.services.catalog import journey_named
from starter.services.errors import Refusal
from starter.services.lead_access import rep_scope
from starter.services.lead_list import (
    LeadFilter,
    LeadListQuery,
    LeadPage,
    LeadSummary,
    all_leads,
    list_leads,
)

EXPORT_COLUMNS = tuple(LeadSummary.model_fields)


class JourneySummary(BaseModel):
    """A deployed journey."""

    name: str
    version: str
    description: str
    entry: str
    steps: int
    emails: list[str]
    reentry: str
    triggers: list[str] = []


JourneyName = Annotated[str, Path(max_length=100, pattern=r"^[a-z0-9-]+$")]


router = APIRouter()


@router.get("/v1/leads", response_model=LeadPage, tags=["leads"])
async def get_leads(
    holder: MarketingOrSalesKey,
    sessions: Sessions,
    query: Annotated[LeadListQuery, Query()],
) -> LeadPage:
    """Leads, filtered by stage, score range, journey, owner and account, sorted by
    `created_at` or `score` (prefix `-` for descending), a page at a time: pass the
    answer's `next_cursor` as `cursor`. A sales rep's key lists only the rep's leads."""
    return await list_leads(
        sessions,
        query,
        rep=rep_scope(holder),
        limit=query.limit,
        cursor=query.cursor,
    )


@router.get(
    "/v1/exports/leads.csv",
    tags=["leads"],
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
async def export_leads(
    holder: MarketingKey,
    sessions: Sessions,
    filters: Annotated[LeadFilter, Query()],
) -> StreamingResponse:
    """The leads `GET /v1/leads` would list, as CSV (all pages). Cells that a
    spreadsheet would run as a formula (starting `= + - @`) are neutralised with a
    leading apostrophe."""
    rep = rep_scope(holder)

    async def lines() -> AsyncIterator[str]:
        rows = [
            [getattr(lead, column) for column in EXPORT_COLUMNS]
            async for lead in all_leads(sessions, filters, rep=rep)
        ]
        for line in csv_lines(EXPORT_COLUMNS, rows):
            yield line

    return StreamingResponse(
        lines(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="leads.csv"'},
    )


@router.get("/v1/analytics/funnel", response_model=FunnelReport, tags=["analytics"])
async def get_funnel(
    _: MarketingKey, sessions: Sessions, query: Annotated[FunnelQuery, Query()]
) -> FunnelReport:
    """Leads per lifecycle stage: how many reached it, how many are in it now, the
    conversion to the next stage and the median hours spent in it (stays that ended).
    Filter by creation period (`since`, `until`) and `journey`; `interval=week|month`
    adds the same figures per cohort."""
    return await funnel_report(sessions, query)


@router.get(
    "/v1/analytics/funnel.svg",
    tags=["analytics"],
    response_class=Response,
    responses={200: {"content": {"image/svg+xml": {"schema": {"type": "string"}}}}},
)
async def get_funnel_svg(
    _: MarketingKey, sessions: Sessions, query: Annotated[FunnelQuery, Query()]
) -> Response:
    """The funnel as an SVG bar chart (same filters as `/v1/analytics/funnel`)."""
    report = await funnel_report(sessions, query)
    title = f"Lifecycle funnel: {report.leads} leads"
    if query.journey:
        title += f" in {query.journey}"
    return Response(funnel_svg(report, title), media_type="image/svg+xml")


@router.get(
    "/v1/analytics/journeys/{journey}",
    response_model=JourneyStats,
    tags=["analytics"],
    responses={404: {"description": "No such journey"}},
)
async def get_journey_stats(
    journey: JourneyName, _: MarketingKey, sessions: Sessions
) -> JourneyStats:
    """Per email step: sent, opened, clicked, converted (became an MQL after it) and
    their rates; per A/B test: each variant's click and conversion rate, and the leader."""
    definition = journey_named(journey, ("path", "journey"), Refusal.NOT_FOUND)
    return await journey_report(sessions, definition)


@router.get("/v1/analytics/deliverability", response_model=list[SourceRates], tags=["analytics"])
async def get_deliverability(
    _: MarketingKey, sessions: Sessions, query: Annotated[DeliverabilityQuery, Query()]
) -> list[SourceRates]:
    """Bounce and complaint rates per send source (each journey; each broadcast): messages
    sent, bounced permanently, soft-bounced, complained about, their rates, and a warning
    where the complaint rate reaches 0.3 % (Gmail's threshold) or hard bounces 2 %."""
    return await deliverability_report(sessions, query)


@router.get("/v1/journeys", response_model=list[JourneySummary], tags=["journeys"])
async def get_journeys(_: MarketingKey) -> list[JourneySummary]:
    """The journeys deployed (journeys/catalog), with their version."""
    return [
        JourneySummary(
            name=definition.name,
            version=definition.version,
            description=definition.description,
            entry=definition.entry,
            steps=len(definition.steps),
            emails=[step.id for step in definition.steps if step.kind == "send_email"],
            reentry=definition.reentry.policy,
            triggers=[label(t) for t in all_triggers().get(definition.name, ())],
        )
        for definition in sorted(all_journeys().values(), key=lambda d: d.name)
    ]
