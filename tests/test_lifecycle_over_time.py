"""The lifecycle over days and weeks, on the time-skipping test server with the real worker,
PostgreSQL and SMTP sink: SLA escalation, cool-down after a rejection, score decay."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select

from db.models import ScoreRecord
from starter.dev.simulation import SimulationStack
from starter.services.events import EventIn, record_event
from tests.lifecycle_helpers import create_confirmed_lead, decider, handovers_of, lead_row
from workflows.contracts import LeadStatus, SalesFeedback

KIM = "kim@sales.nurture.example"


async def new_lead(simulation: SimulationStack, leads: list[str], **extra: str | None) -> str:
    lead_id = await create_confirmed_lead(simulation.sessions, decider(**extra))
    leads.append(lead_id)
    return lead_id


async def engage(simulation: SimulationStack, lead_id: str, *kinds: str) -> None:
    for kind in kinds:
        await record_event(
            simulation.client,
            simulation.sessions,
            EventIn(
                lead_id=uuid.UUID(lead_id),
                type=kind,
                event_id=f"{kind}-{uuid.uuid4().hex[:8]}",
                occurred_at=await simulation.env.get_current_time(),
                properties={"url": "https://nurture.example/pricing"}
                if kind == "page_view"
                else {},
            ),
            simulation.lifecycle,
        )
    await simulation.env.sleep(timedelta(minutes=1))


async def status(simulation: SimulationStack, lead_id: str) -> LeadStatus:
    return await simulation.lifecycle.status(lead_id)


def mails_about(simulation: SimulationStack, address: str, first_name: str) -> list[str]:
    return [m["Subject"] for m in simulation.sink.to(address) if first_name in m["Subject"]]


async def test_an_mql_nobody_accepts_is_escalated_then_reassigned(
    simulation: SimulationStack, leads: list[str]
) -> None:
    lead_id = await new_lead(simulation, leads)
    first_name = (await lead_row(simulation.sessions, lead_id)).first_name or ""
    await engage(simulation, lead_id, "demo_request")
    assert (await status(simulation, lead_id)).owner == "kim"

    await simulation.env.sleep(timedelta(days=1, hours=23))
    assert (await status(simulation, lead_id)).sla_phase == 0
    await simulation.env.sleep(timedelta(hours=2))  # two days: the SLA lapsed
    reminded = await status(simulation, lead_id)
    await simulation.env.sleep(timedelta(days=1))  # and one more: reassigned
    reassigned = await status(simulation, lead_id)

    assert (reminded.sla_phase, reminded.owner) == (1, "kim")
    assert [s for s in mails_about(simulation, KIM, first_name) if s.startswith("Reminder")]
    assert reassigned.sla_phase == 2 and reassigned.owner not in (None, "kim")
    new_owner = f"{reassigned.owner}@sales.nurture.example"
    assert len(mails_about(simulation, new_owner, first_name)) == 1
    first, second = await handovers_of(simulation.sessions, lead_id)
    assert (first.owner, first.status) == ("kim", "reassigned")
    assert (second.owner, second.status, second.cycle) == (reassigned.owner, "open", 1)


async def test_a_rejected_lead_becomes_an_mql_again_only_after_the_cool_down(
    simulation: SimulationStack, leads: list[str]
) -> None:
    lead_id = await new_lead(simulation, leads)
    lead_email = (await lead_row(simulation.sessions, lead_id)).email or ""
    await engage(simulation, lead_id, "demo_request")
    assert (await status(simulation, lead_id)).stage == "mql"

    await simulation.lifecycle.feedback_later(
        lead_id, SalesFeedback(outcome="reject", reason="timing", rep="kim")
    )
    await simulation.env.sleep(timedelta(days=5))
    recycled = await status(simulation, lead_id)
    await engage(simulation, lead_id, "demo_request", "page_view", "page_view", "page_view")
    keen_but_cooling = await status(simulation, lead_id)
    await simulation.env.sleep(timedelta(days=26))  # the 30-day cool-down is over
    again = await status(simulation, lead_id)

    assert (recycled.stage, recycled.rejections, recycled.behaviour) == ("recycled", 1, 0)
    assert next(m["Subject"] for m in simulation.sink.to(lead_email)).startswith("Picking up")
    assert keen_but_cooling.qualifies and keen_but_cooling.stage == "recycled"
    assert (again.stage, again.mql_cycles) == ("mql", 2)
    handovers = await handovers_of(simulation.sessions, lead_id)
    assert [(h.cycle, h.status) for h in handovers] == [(1, "rejected"), (2, "open")]


async def test_decay_lowers_a_stale_score(simulation: SimulationStack, leads: list[str]) -> None:
    lead_id = await new_lead(simulation, leads, persona=None)  # the general model: no MQL here
    await engage(simulation, lead_id, "download", "download", "email_click", "email_click")
    fresh = await lead_row(simulation.sessions, lead_id)

    await simulation.env.sleep(timedelta(days=60))  # two half-lives
    stale = await lead_row(simulation.sessions, lead_id)

    assert fresh.behaviour_score == 30
    assert 6 <= stale.behaviour_score <= 8 and stale.score < fresh.score
    async with simulation.sessions() as session:
        causes = (
            (await session.execute(select(ScoreRecord.cause).where(ScoreRecord.lead_id == lead_id)))
            .scalars()
            .all()
        )
    assert "scheduled rescore" in causes


async def test_an_unconfirmed_double_opt_in_is_reminded_then_expires_and_gets_no_marketing(
    simulation: SimulationStack, leads: list[str]
) -> None:
    from db.suppression_list import SuppressionList
    from journeys.registry import get_journey
    from starter.services.enrollment import LeadIn, enroll

    lead = decider()
    result = await enroll(
        simulation.client,
        simulation.sessions,
        task_queue=simulation.settings.task_queue,
        lead_in=LeadIn.model_validate(lead),
        definition=get_journey("welcome"),
        suppressions=SuppressionList(simulation.settings.require_secret_key()),
        lifecycle=simulation.lifecycle,
    )
    leads.append(result.lead_id)
    email = str(lead["email"])

    await simulation.env.sleep(timedelta(days=1))
    first_day = [m["Subject"] for m in simulation.sink.to(email)]
    await simulation.env.sleep(timedelta(days=2))
    reminded = [m["Subject"] for m in simulation.sink.to(email)]
    await simulation.env.sleep(timedelta(days=6))
    row = await lead_row(simulation.sessions, result.lead_id)

    assert result.consent_status == "pending"
    assert len(first_day) == 1 and first_day[0].startswith("Please confirm")
    assert len(reminded) == 2 and reminded[1].startswith("Reminder")
    assert row.consent_status == "expired"
    assert len(simulation.sink.to(email)) == 2  # never a marketing email
