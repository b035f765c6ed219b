"""Send windows and frequency caps: pure rules, and a capped journey email deferred (not
dropped) on the time-skipping server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.testing import WorkflowEnvironment

from db.models import OutboxEmail
from journeys.personas import PERSONAS
from journeys.registry import get_journey
from journeys.send_policy import SendPolicy, in_window, next_allowed_moment
from starter.dev.simulation import simulation_stack

POLICY = SendPolicy(quiet_from=21, quiet_until=8, weekdays=frozenset(range(5)), cap=3)
MONDAY_NOON = datetime(2026, 11, 23, 12, tzinfo=UTC)


def test_a_send_inside_the_window_and_under_the_cap_goes_now() -> None:
    assert next_allowed_moment(MONDAY_NOON, "UTC", [], POLICY) == MONDAY_NOON


def test_quiet_hours_defer_to_the_morning_in_the_leads_timezone() -> None:
    late_in_berlin = datetime(2026, 11, 23, 21, 30, tzinfo=UTC)  # 22:30 in Berlin
    moment = next_allowed_moment(late_in_berlin, "Europe/Berlin", [], POLICY)
    assert moment.astimezone(ZoneInfo("Europe/Berlin")) == datetime(
        2026, 11, 24, 8, tzinfo=ZoneInfo("Europe/Berlin")
    )


def test_weekends_are_skipped_when_only_weekdays_are_allowed() -> None:
    saturday = datetime(2026, 11, 28, 10, tzinfo=UTC)
    assert next_allowed_moment(saturday, "UTC", [], POLICY) == datetime(2026, 11, 30, 8, tzinfo=UTC)


def test_the_cap_defers_until_the_oldest_send_ages_out_then_to_the_window() -> None:
    sent = [MONDAY_NOON - timedelta(days=d, hours=3) for d in (1, 2, 3)]  # 3 in 7 days
    moment = next_allowed_moment(MONDAY_NOON, "UTC", sent, POLICY)
    assert moment == sent[-1] + timedelta(days=7, seconds=1)  # Friday 09:00:01


def test_a_cap_that_frees_up_in_quiet_hours_waits_for_the_window() -> None:
    sent = [datetime(2026, 11, 20, 22, tzinfo=UTC)]  # ages out Friday 27, 22:00: quiet
    moment = next_allowed_moment(MONDAY_NOON, "UTC", sent, POLICY.model_copy(update={"cap": 1}))
    assert moment == datetime(2026, 11, 30, 8, tzinfo=UTC)  # then the weekend: Monday 08:00


def test_an_unknown_timezone_falls_back_to_utc() -> None:
    assert in_window(MONDAY_NOON, "Mars/Olympus", POLICY)


@pytest.mark.parametrize("hour", [21, 23, 0, 7])
def test_quiet_hours_wrap_around_midnight(hour: int) -> None:
    assert not in_window(MONDAY_NOON.replace(hour=hour), "UTC", POLICY)


async def test_a_capped_journey_email_is_deferred_to_the_next_window_and_still_sent(
    time_skipping_env: WorkflowEnvironment, sessions: async_sessionmaker
) -> None:
    async with simulation_stack(
        env=time_skipping_env,
        sessions=sessions,
        overrides={"NURTURE_QUIET_HOURS": "21-8", "NURTURE_FREQUENCY_CAP": "1/7d"},
    ) as stack:
        report = await stack.run(
            get_journey("welcome-series"), persona=PERSONAS["practitioner"], days=12
        )
        async with sessions() as session:
            rows = (
                (
                    await session.execute(
                        select(OutboxEmail)
                        .where(OutboxEmail.lead_id == report.lead_id, OutboxEmail.status == "sent")
                        .order_by(OutboxEmail.sent_at)
                    )
                )
                .scalars()
                .all()
            )

    deferrals = [e.what for e in report.timeline if "deferred" in e.what]
    assert deferrals and "frequency cap" in deferrals[0]
    assert len(rows) >= 2
    first, second = rows[0].sent_at, rows[1].sent_at
    assert second - first >= timedelta(days=7)
    local = second.astimezone(ZoneInfo("America/New_York"))  # the practitioner's zone
    assert 8 <= local.hour < 21
