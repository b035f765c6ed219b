"""Date triggers over a simulated year on the time-skipping server, with the real worker,
PostgreSQL and SMTP sink: a birthday greeting goes out on the day at 09:00 in the lead's
timezone, once a year (issue 14)."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from db.models import Lead, TriggerFiring
from starter.dev.simulation import SimulationStack
from tests.conftest import new_email
from workflows.contracts import LeadNudge, journey_workflow_id

BERLIN = ZoneInfo("Europe/Berlin")


async def _lead_with_birthday(simulation: SimulationStack, email: str, birthday: str) -> str:
    async with simulation.sessions() as session:
        lead = Lead(
            email=email, first_name="Greta", timezone="Europe/Berlin",
            consent_status="confirmed", properties={"birthday": birthday},
            created_at=await simulation.env.get_current_time(),
        )  # fmt: skip
        session.add(lead)
        await session.commit()
        return lead.id


async def test_a_birthday_greeting_goes_out_on_the_day_at_nine_local_once_a_year(
    simulation: SimulationStack, leads: list[str]
) -> None:
    now = await simulation.env.get_current_time()
    day = (now + timedelta(days=10)).astimezone(BERLIN).date()
    email = new_email("birthday")
    lead_id = await _lead_with_birthday(simulation, email, f"1990-{day:%m-%d}")
    leads.append(lead_id)
    await simulation.lifecycle.nudge(lead_id, LeadNudge(cause="lead identified"))

    await simulation.env.sleep(timedelta(days=15))
    journey = simulation.client.get_workflow_handle(
        journey_workflow_id("birthday-greeting", lead_id)
    )
    first = await journey.describe()
    await simulation.env.sleep(timedelta(days=365))

    greetings = [m for m in simulation.sink.to(email) if "birthday" in m["Subject"].lower()]
    assert len(greetings) == 2
    assert first.start_time is not None
    started = first.start_time.astimezone(BERLIN)
    assert (started.date(), started.hour) == (day, 9)
    async with simulation.sessions() as session:
        causes = (
            await session.execute(
                select(TriggerFiring.cause_key).where(
                    TriggerFiring.lead_id == lead_id,
                    TriggerFiring.journey == "birthday-greeting",
                )
            )
        ).scalars()
        assert sorted(causes) == [
            f"date:birthday:{day.isoformat()}",
            f"date:birthday:{day.replace(year=day.year + 1).isoformat()}",
        ]
