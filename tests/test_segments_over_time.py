"""Segments over weeks on the time-skipping server with the real worker, PostgreSQL and
SMTP sink: a lead leaves a behaviour segment when its window passes — no polling, a timer
the lead's workflow set — and a journey with an exit on that segment ends (issue 14)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select

from db.models import SegmentMembership, SegmentTransition
from starter.dev.simulation import SimulationStack
from starter.services.events import EventIn, record_event
from tests.conftest import new_email
from tests.lifecycle_helpers import create_confirmed_lead
from workflows.contracts import (
    PROGRESS_QUERY,
    JourneyProgress,
    journey_workflow_id,
)


async def _pricing_view(simulation: SimulationStack, lead_id: str) -> None:
    await record_event(
        simulation.client,
        simulation.sessions,
        EventIn(
            lead_id=uuid.UUID(lead_id),
            type="page_view",
            event_id=f"pv-{uuid.uuid4().hex[:8]}",
            occurred_at=await simulation.env.get_current_time(),
            properties={"url": "https://nurture.example/pricing"},
        ),
        simulation.lifecycle,
    )


async def _segments(simulation: SimulationStack, lead_id: str) -> set[str]:
    async with simulation.sessions() as session:
        rows = await session.execute(
            select(SegmentMembership.segment).where(SegmentMembership.lead_id == lead_id)
        )
        return set(rows.scalars())


async def test_a_lead_leaves_pricing_visitors_when_the_window_passes_and_the_follow_up_ends(
    simulation: SimulationStack, leads: list[str]
) -> None:
    email = new_email("pricing-window")
    lead_id = await create_confirmed_lead(simulation.sessions, {"email": email})
    leads.append(lead_id)
    for _ in range(3):
        await _pricing_view(simulation, lead_id)
        await simulation.env.sleep(timedelta(hours=1))
    assert "pricing-visitors" in await _segments(simulation, lead_id)

    await simulation.env.sleep(timedelta(days=12))  # past the 7-day window and the check-in
    journey = simulation.client.get_workflow_handle(
        journey_workflow_id("pricing-follow-up", lead_id)
    )
    progress = await journey.query(PROGRESS_QUERY, result_type=JourneyProgress)

    assert (progress.status, progress.exit_goal) == ("completed", "stopped_visiting")
    assert "pricing-visitors" not in await _segments(simulation, lead_id)
    subjects = [m["Subject"] for m in simulation.sink.to(email)]
    assert len(subjects) == 2 and not any("Still weighing" in s for s in subjects)
    async with simulation.sessions() as session:
        changes = (
            await session.execute(
                select(SegmentTransition.segment, SegmentTransition.change)
                .where(SegmentTransition.lead_id == lead_id)
                .order_by(SegmentTransition.id)
            )
        ).all()
    assert [tuple(c) for c in changes] == [
        ("pricing-visitors", "entered"),
        ("pricing-visitors", "left"),
    ]
