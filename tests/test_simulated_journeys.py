"""Shipped journeys over weeks of simulated time: the real workflow, activities, PostgreSQL
and SMTP, on the time-skipping test server (the machinery of `nurture simulate`)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from db.models import CrmHandover, Enrollment, Lead
from journeys.personas import PERSONAS
from journeys.registry import get_journey
from starter.dev.simulation import SimulationReport, SimulationStack, parse_events

DECIDER = PERSONAS["decision-maker"]


def sent(report: SimulationReport) -> list[str]:
    return [
        e.what.removeprefix("email sent: ").split(" ")[0]
        for e in report.timeline
        if e.what.startswith("email sent")
    ]


def sent_at(report: SimulationReport, template: str) -> datetime:
    return next(e.at for e in report.timeline if e.what.startswith(f"email sent: {template}"))


async def test_whitepaper_nurture_hands_a_demo_request_to_sales_once(
    simulation: SimulationStack,
) -> None:
    report = await simulation.run(
        get_journey("whitepaper-nurture"),
        persona=DECIDER,
        days=60,
        events=parse_events("12d:email_click,14d:demo_request,15d:demo_request"),
    )

    assert report.status == "completed"
    assert sent(report)[0] == "wp_delivery" and sent(report)[-1] == "wp_demo_offer"
    assert len(report.emails) == 5  # the emails really reached the SMTP server
    assert (report.stage, report.handovers) == ("mql", 1)
    assert report.offset(sent_at(report, "wp_education_2")) >= timedelta(days=6)


async def test_whitepaper_nurture_without_engagement_ends_without_handover(
    simulation: SimulationStack,
) -> None:
    report = await simulation.run(get_journey("whitepaper-nurture"), persona=DECIDER, days=60)

    assert report.status == "completed"
    assert report.handovers == 0
    assert "wait timed out" in [e.what for e in report.timeline]


async def test_welcome_series_sends_the_case_study_inside_business_hours_in_the_lead_timezone(
    simulation: SimulationStack,
) -> None:
    report = await simulation.run(get_journey("welcome-series"), persona=DECIDER, days=20)

    assert sent(report) == ["ws_welcome", "ws_tips", "ws_case_study"]
    local = sent_at(report, "ws_case_study").astimezone(ZoneInfo(DECIDER.sample_lead["timezone"]))
    assert local.weekday() < 5 and 9 <= local.hour < 17


async def test_webinar_registration_reminds_a_day_and_an_hour_before_then_sends_the_recording(
    simulation: SimulationStack,
) -> None:
    now = await simulation.env.get_current_time()  # the server's clock, not the wall's
    starts = (now + timedelta(days=5)).replace(microsecond=0)
    report = await simulation.run(
        get_journey("webinar-registration"),
        persona=DECIDER,
        days=10,
        properties={"webinar_starts_at": starts.isoformat(), "webinar_title": "Scoring 101"},
    )

    assert sent(report) == [
        "webinar_confirmation",
        "webinar_reminder_day",
        "webinar_reminder_hour",
        "webinar_missed",
    ]
    assert abs(sent_at(report, "webinar_reminder_day") - (starts - timedelta(days=1))) < timedelta(
        minutes=1
    )
    assert abs(
        sent_at(report, "webinar_reminder_hour") - (starts - timedelta(hours=1))
    ) < timedelta(minutes=1)
    assert report.emails[0]["Subject"] == "You're registered: Scoring 101"


async def test_an_exit_goal_ends_the_journey_the_moment_the_event_arrives(
    simulation: SimulationStack,
) -> None:
    report = await simulation.run(
        get_journey("welcome-series"),
        persona=DECIDER,
        days=20,
        events=parse_events("1d:unsubscribe"),
    )

    assert report.status == "completed"
    assert sent(report) == ["ws_welcome"]
    assert "exit goal reached: unsubscribed" in [e.what for e in report.timeline]
    ended = next(e.at for e in report.timeline if e.what == "journey ended")
    assert report.offset(ended) < timedelta(days=1, minutes=1)


async def test_win_back_unsubscribes_a_lead_that_stays_silent(simulation: SimulationStack) -> None:
    report = await simulation.run(get_journey("win-back"), persona=DECIDER, days=20)

    async with simulation.sessions() as session:
        lead = await session.get(Lead, report.lead_id)
    assert sent(report) == ["winback_miss_you", "winback_last_chance"]
    assert lead is not None and lead.properties["marketing_consent"] == "withdrawn"


async def test_form_reminder_stays_quiet_when_the_form_is_finished_in_time(
    simulation: SimulationStack,
) -> None:
    report = await simulation.run(
        get_journey("form-reminder"),
        persona=DECIDER,
        days=3,
        events=parse_events("30m:form_submit"),
    )

    assert report.status == "completed"
    assert report.emails == []


async def test_recycled_nurture_hands_over_again_on_a_demo_request(
    simulation: SimulationStack,
) -> None:
    report = await simulation.run(
        get_journey("recycled-nurture"),
        persona=DECIDER,
        days=60,
        events=parse_events("40d:demo_request"),
    )

    async with simulation.sessions() as session:
        handovers = (
            (
                await session.execute(
                    select(CrmHandover).where(CrmHandover.lead_id == report.lead_id)
                )
            )
            .scalars()
            .all()
        )
    assert sent(report) == ["recycled_checkin", "recycled_education", "recycled_case_study"]
    assert len(handovers) == 1 and report.stage == "mql"


def test_a_simulated_event_takes_properties_validated_like_the_api() -> None:
    [event] = parse_events("1d:page_view{url=/pricing;referrer=ad}")

    assert (event.type, event.properties) == ("page_view", {"url": "/pricing", "referrer": "ad"})
    with pytest.raises(ValueError, match="plan"):
        parse_events("2d:trial_started{plna=pro}")


async def test_a_simulation_shows_segment_entries_exits_and_the_journeys_they_start(
    simulation: SimulationStack,
) -> None:
    views = ",".join(["1d:page_view{url=/pricing}"] * 3)

    report = await simulation.run(
        get_journey("whitepaper-nurture"), persona=DECIDER, days=12, events=parse_events(views)
    )

    lifecycle = [entry.what for entry in report.lifecycle]
    assert "entered segment pricing-visitors" in lifecycle
    assert "trigger started pricing-follow-up" in lifecycle
    assert "left segment pricing-visitors" in lifecycle


async def test_a_finished_journey_is_recorded_as_completed(simulation: SimulationStack) -> None:
    report = await simulation.run(
        get_journey("form-reminder"), persona=DECIDER, days=1,
        events=parse_events("30m:form_submit"),
    )  # fmt: skip

    async with simulation.sessions() as session:
        completed = (
            await session.execute(
                select(Enrollment.completed_at).where(
                    Enrollment.lead_id == report.lead_id, Enrollment.journey == "form-reminder"
                )
            )
        ).scalar_one()
    assert completed is not None
    assert report.offset(completed) < timedelta(hours=1)
