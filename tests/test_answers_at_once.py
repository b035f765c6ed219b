"""Answers go out at once, follow-ups wait for quiet hours (issue 14, point 8).

An email that answers the lead's own action (the first email after the journey's entry,
with no wait before it, or `timing="answer"`) is held neither by quiet hours nor by the
frequency cap; consent and suppression still hold it. Quiet hours are judged in the lead's
timezone, inferred from its country when it has none, else `NURTURE_DEFAULT_TIMEZONE`.
Pure rules first, then the email activity on PostgreSQL, then `welcome` on the
time-skipping server at 21:05 UTC.
"""

from __future__ import annotations

import dataclasses
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Replayer

from activities.contracts import SendEmailRequest
from activities.email import EmailActivities
from db.models import Lead, OutboxEmail
from journeys.dsl import (
    Branch,
    BranchCase,
    Condition,
    End,
    EventOutcome,
    EventType,
    HandOver,
    JourneyDefinition,
    SendEmail,
    SendWindow,
    SetLeadFields,
    Wait,
    WaitForEvent,
)
from journeys.personas import PERSONAS
from journeys.registry import get_journey
from journeys.send_policy import SendPolicy, answer_steps, next_allowed_moment
from journeys.send_windows import next_window_start
from journeys.timezones import COUNTRY_TIMEZONES, country_timezone, lead_zone
from starter.dev.simulation import simulation_stack
from starter.dev.smtp_sink import SmtpSink
from starter.settings import Settings, SettingsError, load_settings
from starter.worker_wiring import workflow_runner
from tests.conftest import new_email
from workflows.contracts import journey_workflow_id
from workflows.journey import JourneyWorkflow
from workflows.lead import LeadWorkflow

BERLIN = ZoneInfo("Europe/Berlin")
POLICY = SendPolicy(quiet_from=21, quiet_until=8, cap=3)
NIGHT = datetime(2026, 11, 23, 21, 5, tzinfo=UTC)  # a Monday, 22:05 in Berlin: quiet


def journey(*steps: object, entry: str = "first") -> JourneyDefinition:
    return JourneyDefinition(name="answers", entry=entry, steps=steps)


def mail(step_id: str, next: str = "done", **fields: object) -> SendEmail:
    return SendEmail(id=step_id, template="welcome", next=next, **fields)


def pause(step_id: str, next: str) -> Wait:
    return Wait(id=step_id, duration=timedelta(days=1), next=next)


DONE = End(id="done")


# --- which steps are answers (pure, from the definition) ---------------------------------


def test_the_first_email_after_the_entry_is_an_answer_and_the_later_ones_are_follow_ups() -> None:
    assert answer_steps(get_journey("welcome")) == {"welcome"}
    assert answer_steps(get_journey("welcome-series")) == {"welcome"}


def test_an_answer_may_come_through_branches_sets_and_handovers_that_dont_wait() -> None:
    definition = journey(
        SetLeadFields(id="first", add_score=5, next="route"),
        Branch(
            id="route",
            cases=(
                BranchCase(when=(Condition(attribute="country", op="eq", value="DE"),), next="de"),
            ),
            default="hand",
        ),
        HandOver(id="hand", next="en"),
        mail("de"),
        mail("en"),
        DONE,
    )

    assert answer_steps(definition) == {"de", "en"}


def test_an_email_after_a_wait_is_a_follow_up() -> None:
    definition = journey(pause("first", "later"), mail("later"), DONE)

    assert answer_steps(definition) == set()
    assert answer_steps(get_journey("form-reminder")) == set()


def test_a_second_email_straight_after_the_first_is_a_follow_up() -> None:
    definition = journey(mail("first", next="second"), mail("second"), DONE)

    assert answer_steps(definition) == {"first"}


def test_a_step_also_reached_after_a_wait_is_a_follow_up() -> None:
    looping = journey(
        mail("first", next="await_click"),
        WaitForEvent(
            id="await_click",
            outcomes=(EventOutcome(events=(EventType.EMAIL_CLICK,), next="done"),),
            timeout=timedelta(days=3),
            on_timeout="first",
        ),
        DONE,
    )
    joining = journey(
        Branch(
            id="first",
            cases=(
                BranchCase(when=(Condition(attribute="score", op="gte", value=50),), next="hot"),
            ),
            default="later",
        ),
        pause("later", "hot"),
        mail("hot"),
        DONE,
    )

    assert answer_steps(looping) == set()
    assert answer_steps(joining) == set()


def test_the_journey_may_say_answer_or_scheduled_whatever_the_position() -> None:
    definition = journey(
        mail("first", next="await_download", timing="scheduled"),
        WaitForEvent(
            id="await_download",
            outcomes=(EventOutcome(events=(EventType.DOWNLOAD,), next="your_file"),),
            timeout=timedelta(days=3),
            on_timeout="done",
        ),
        mail("your_file", timing="answer"),
        DONE,
    )

    assert answer_steps(definition) == {"your_file"}


def test_timing_auto_leaves_a_journeys_version_and_snapshot_as_they_were() -> None:
    plain = mail("first")
    assert "timing" not in plain.model_dump(mode="json")
    assert mail("first", timing="answer").model_dump(mode="json")["timing"] == "answer"
    assert SendEmail.model_validate(plain.model_dump(mode="json")).timing == "auto"
    definition = journey(plain, DONE)
    assert definition.version == journey(mail("first", timing="auto"), DONE).version
    assert definition.version != journey(mail("first", timing="answer"), DONE).version


# --- when an answer and a follow-up may go (pure) ----------------------------------------


def test_an_answer_is_held_neither_by_quiet_hours_nor_by_the_cap() -> None:
    capped = [NIGHT - timedelta(days=d) for d in (1, 2, 3)]

    assert next_allowed_moment(NIGHT, "Europe/Berlin", capped, POLICY, answer=True) == NIGHT
    assert next_allowed_moment(NIGHT, "Europe/Berlin", capped, POLICY) > NIGHT


def test_a_follow_up_in_quiet_hours_waits_for_the_morning_in_the_inferred_zone() -> None:
    moment = next_allowed_moment(NIGHT, None, [], POLICY, country="DE")

    assert moment.astimezone(BERLIN) == datetime(2026, 11, 24, 8, tzinfo=BERLIN)


# --- timezone inference (pure) -----------------------------------------------------------


def test_a_lead_without_a_timezone_gets_its_countrys_zone() -> None:
    assert lead_zone(None, "DE") == ZoneInfo("Europe/Berlin")
    assert lead_zone(None, "FR") == ZoneInfo("Europe/Paris")
    assert lead_zone("", "gb") == ZoneInfo("Europe/London")
    assert lead_zone(None, "UK") == ZoneInfo("Europe/London")


def test_the_leads_own_timezone_wins_and_an_invalid_one_falls_back_to_the_country() -> None:
    assert lead_zone("America/Chicago", "DE") == ZoneInfo("America/Chicago")
    assert lead_zone("Mars/Olympus", "DE") == ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize("country", ["US", "CA", "AU", "BR", "RU", "MX", "ID", "XX", "", None])
def test_a_country_of_several_zones_or_none_gets_the_configured_default(
    country: str | None,
) -> None:
    assert country_timezone(country) is None
    assert lead_zone(None, country, "America/New_York") == ZoneInfo("America/New_York")
    assert lead_zone(None, country) == ZoneInfo("UTC")


def test_every_country_zone_is_a_real_zone() -> None:
    for code, name in COUNTRY_TIMEZONES.items():
        assert len(code) == 2 and code.isupper()
        assert lead_zone(name, None, None).key == name


def test_a_send_window_infers_the_zone_from_the_country_too() -> None:
    window = SendWindow(start_hour=9, end_hour=17)
    opens = next_window_start(NIGHT, None, window, country="DE")

    assert opens.astimezone(BERLIN) == datetime(2026, 11, 24, 9, tzinfo=BERLIN)


def test_the_default_timezone_is_a_setting_and_must_be_a_real_zone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert load_settings().send_policy.default_timezone == "UTC"
    monkeypatch.setenv("NURTURE_DEFAULT_TIMEZONE", "America/New_York")
    assert load_settings().send_policy.default_timezone == "America/New_York"
    monkeypatch.setenv("NURTURE_DEFAULT_TIMEZONE", "Mars/Olympus")
    with pytest.raises(SettingsError, match="NURTURE_DEFAULT_TIMEZONE"):
        load_settings()


# --- the email activity (PostgreSQL, SMTP sink) ------------------------------------------


def night_settings(smtp: SmtpSink) -> Settings:
    return Settings(
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=smtp.port,  # type: ignore[attr-defined]  # set by the smtp fixture
        MAIL_FROM="Nurture Test <hello@nurture.example>",
        PUBLIC_BASE_URL="http://nurture.example",
        NURTURE_SECRET_KEY=secrets.token_urlsafe(32),
        NURTURE_QUIET_HOURS="21-8",
        NURTURE_FREQUENCY_CAP="3/7d",
    )


async def send_at_night(
    sessions: async_sessionmaker, smtp: SmtpSink, *, answer: bool, consent: str = "confirmed"
) -> tuple[str, str]:
    """Send `welcome` at 21:05 UTC to a new lead in Germany without a timezone."""
    email = new_email()
    async with sessions() as session:
        lead = Lead(email=email, first_name="Ada", country="DE", consent_status=consent)
        session.add(lead)
        await session.commit()
        lead_id = lead.id
    result = await ActivityEnvironment().run(
        EmailActivities(night_settings(smtp), sessions).send_email,
        SendEmailRequest(
            lead_id=lead_id,
            workflow_id="journey:test",
            step_id="welcome",
            template="welcome",
            idempotency_key=f"test/{uuid.uuid4()}",
            now=NIGHT,
            answer=answer,
        ),
    )
    return email, f"{result.status}|{result.retry_at.isoformat() if result.retry_at else ''}"


async def test_an_answer_goes_at_once_in_quiet_hours_and_a_follow_up_is_deferred(
    sessions: async_sessionmaker, smtp: SmtpSink
) -> None:
    email, answered = await send_at_night(sessions, smtp, answer=True)
    _, followed_up = await send_at_night(sessions, smtp, answer=False)

    assert answered == "sent|"
    await smtp.wait_for(email, 1)
    status, retry_at = followed_up.split("|")
    assert status == "deferred"
    assert datetime.fromisoformat(retry_at).astimezone(BERLIN) == datetime(
        2026, 11, 24, 8, tzinfo=BERLIN
    )


@pytest.mark.parametrize(
    ("consent", "outcome"), [("pending", "deferred"), ("unsubscribed", "skipped")]
)
async def test_consent_holds_an_answer_too(
    sessions: async_sessionmaker, smtp: SmtpSink, consent: str, outcome: str
) -> None:
    email, result = await send_at_night(sessions, smtp, answer=True, consent=consent)

    assert result.split("|")[0] == outcome
    assert smtp.to(email) == []


# --- welcome at 21:05 UTC on the time-skipping server ------------------------------------


async def test_at_21_05_utc_the_welcome_goes_at_once_and_the_reminder_waits_for_the_morning(
    time_skipping_env: WorkflowEnvironment, sessions: async_sessionmaker
) -> None:
    now = await time_skipping_env.get_current_time()
    evening = now.astimezone(UTC).replace(hour=21, minute=5, second=0, microsecond=0)
    if evening <= now + timedelta(minutes=1):
        evening += timedelta(days=1)
    await time_skipping_env.sleep(evening - now)
    # A lead in Germany without a timezone: 21:05 UTC is 22:05 or 23:05 there, quiet.
    german = dataclasses.replace(
        PERSONAS["decision-maker"],
        sample_lead={**PERSONAS["decision-maker"].sample_lead, "timezone": None},
    )

    async with simulation_stack(
        env=time_skipping_env,
        sessions=sessions,
        overrides={
            "NURTURE_QUIET_HOURS": "21-8",
            "NURTURE_FREQUENCY_CAP": "3/7d",
            "NURTURE_DEFAULT_TIMEZONE": "UTC",
        },
    ) as stack:
        report = await stack.run(get_journey("welcome"), persona=german, days=4)
        handle = stack.client.get_workflow_handle(journey_workflow_id("welcome", report.lead_id))
        history = await handle.fetch_history()
        async with sessions() as session:
            sent = (
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

    assert [row.step_id for row in sent] == ["welcome", "reminder"]
    welcome, reminder = (row.sent_at for row in sent)
    assert welcome is not None and reminder is not None
    started = report.started_at.astimezone(UTC)
    assert abs(started - evening) < timedelta(minutes=1)
    assert welcome - started < timedelta(minutes=1)  # at once, in Berlin's quiet hours
    assert welcome.astimezone(BERLIN).hour >= 21
    # The reminder came due at 21:05 UTC three days later, and waited for 08:00 in Berlin
    # (the zone of the lead's country; the default, UTC, would have said 08:00 UTC).
    assert reminder - started > timedelta(days=3)
    local = reminder.astimezone(BERLIN)
    assert (local.hour, local.minute) == (8, 0)
    assert reminder - started < timedelta(days=4)
    deferred = [e.what for e in report.timeline if "deferred" in e.what]
    assert len(deferred) == 1 and "welcome_reminder" in deferred[0]
    # The history with the `answers-at-once` marker replays against today's interpreter.
    replay = await Replayer(
        workflows=[JourneyWorkflow, LeadWorkflow],
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(),
    ).replay_workflow(history, raise_on_replay_failure=False)
    assert replay.replay_failure is None, replay.replay_failure
    assert any(e.HasField("marker_recorded_event_attributes") for e in history.events), (
        "the answer recorded the patch marker"
    )
