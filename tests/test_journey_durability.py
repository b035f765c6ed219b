"""Bounded histories and safe versioning, on the real Temporal dev server."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.client import Client, WorkflowExecutionDescription
from temporalio.worker import Worker

from db.models import Lead
from journeys.dsl import (
    Condition,
    ConditionOutcome,
    End,
    EventType,
    JourneyDefinition,
    SendEmail,
    WaitForEvent,
)
from journeys.registry import get_journey
from journeys.validation import define_journey
from starter.dev.smtp_sink import SmtpSink
from starter.services.enrollment import start_journey
from starter.settings import Settings
from tests.conftest import new_email
from tests.sample_journeys import CLICKY, with_short_waits
from workflows.contracts import (
    ENGAGEMENT_SIGNAL,
    PROGRESS_QUERY,
    EngagementSignal,
    JourneyOutcome,
    JourneyProgress,
)


async def new_lead(sessions: async_sessionmaker, first_name: str = "Lin") -> tuple[str, str]:
    email = new_email()
    async with sessions() as session:
        lead = Lead(email=email, first_name=first_name, consent_status="confirmed")
        session.add(lead)
        await session.commit()
    return lead.id, email


def click(number: int) -> EngagementSignal:
    return EngagementSignal(
        event_id=f"click-{number}", type=EventType.EMAIL_CLICK, occurred_at=datetime.now(UTC)
    )


async def test_a_lead_that_clicks_thousands_of_times_keeps_a_bounded_history_and_loses_nothing(
    worker: Worker,
    temporal_client: Client,
    sessions: async_sessionmaker,
    settings: Settings,
    smtp: SmtpSink,
) -> None:
    lead_id, email = await new_lead(sessions)
    enrollment = await start_journey(
        temporal_client,
        sessions,
        task_queue=settings.task_queue,
        lead_id=lead_id,
        definition=CLICKY,
        continue_as_new_after=200,
    )
    handle = temporal_client.get_workflow_handle(enrollment.workflow_id, result_type=JourneyOutcome)
    await smtp.wait_for(email, 1)

    for batch in range(0, 2000, 100):
        await asyncio.gather(
            *(handle.signal(ENGAGEMENT_SIGNAL, click(n)) for n in range(batch, batch + 100))
        )
    # Repeats of recent clicks: within the workflow's de-duplication window.
    await asyncio.gather(*(handle.signal(ENGAGEMENT_SIGNAL, click(n)) for n in range(1950, 2000)))
    await handle.signal(
        ENGAGEMENT_SIGNAL,
        EngagementSignal(
            event_id="demo", type=EventType.DEMO_REQUEST, occurred_at=datetime.now(UTC)
        ),
    )
    outcome = await handle.result()

    assert outcome.events_received == 2001  # every click once, the repeats ignored, the demo
    assert outcome.emails_sent == ["welcome", "welcome_next_step"]
    assert len(smtp.to(email)) == 2  # continuing as new sent nothing twice
    description = await handle.describe()
    assert description.run_id != enrollment_first_run(description)
    history = await handle.fetch_history()
    assert len(history.events) < 400  # the last run's history, not 2,000+ signals


def enrollment_first_run(description: WorkflowExecutionDescription) -> str:
    return description.raw_description.workflow_execution_info.first_run_id


async def test_editing_a_journey_leaves_a_lead_already_inside_on_its_version(
    worker: Worker,
    temporal_client: Client,
    sessions: async_sessionmaker,
    settings: Settings,
    smtp: SmtpSink,
) -> None:
    shipped = get_journey("welcome")
    version_1 = with_short_waits(shipped, timedelta(seconds=3))
    # The edit a later deploy makes: the reminder becomes the next-step email.
    data = version_1.model_dump()
    for step in data["steps"]:
        if step["id"] == "reminder":
            step["template"] = "welcome_next_step"
    version_2 = JourneyDefinition.model_validate(data)
    assert version_2.version != version_1.version

    inside, inside_email = await new_lead(sessions, "Early")
    await start_journey(
        temporal_client,
        sessions,
        task_queue=settings.task_queue,
        lead_id=inside,
        definition=version_1,
    )
    await smtp.wait_for(inside_email, 1)
    later, later_email = await new_lead(sessions, "Late")
    await start_journey(
        temporal_client,
        sessions,
        task_queue=settings.task_queue,
        lead_id=later,
        definition=version_2,
    )

    early_emails = await smtp.wait_for(inside_email, 2)
    late_emails = await smtp.wait_for(later_email, 2)

    assert early_emails[1]["Subject"] == "Did you get a chance to look, Early?"  # version 1
    assert late_emails[1]["Subject"] == "Late, your next step with Nurture Test"  # version 2
    progress = await temporal_client.get_workflow_handle(f"journey:welcome:{inside}").query(
        PROGRESS_QUERY, result_type=JourneyProgress
    )
    assert progress.version == version_1.version


def one_email_journey(reentry: dict) -> JourneyDefinition:
    return define_journey(
        name=f"hello-{reentry['policy']}",
        entry="hello",
        reentry=reentry,
        steps=(SendEmail(id="hello", template="welcome", next="done"), End(id="done")),
    )


EnrollTwice = Callable[[JourneyDefinition], Awaitable[tuple[str, str, str]]]


@pytest.fixture
def enroll_twice(
    worker: Worker, temporal_client: Client, sessions: async_sessionmaker, settings: Settings
) -> EnrollTwice:
    """Enroll a new lead, let its journey end, enroll it again: (status, status, email)."""

    async def enroll(definition: JourneyDefinition) -> tuple[str, str, str]:
        lead_id, email = await new_lead(sessions)
        first = await start_journey(
            temporal_client,
            sessions,
            task_queue=settings.task_queue,
            lead_id=lead_id,
            definition=definition,
        )
        await temporal_client.get_workflow_handle(first.workflow_id).result()
        second = await start_journey(
            temporal_client,
            sessions,
            task_queue=settings.task_queue,
            lead_id=lead_id,
            definition=definition,
        )
        return first.status, second.status, email

    return enroll


async def test_a_once_journey_is_never_entered_again(
    enroll_twice: EnrollTwice, smtp: SmtpSink
) -> None:
    statuses = await enroll_twice(one_email_journey({"policy": "once"}))

    assert statuses[:2] == ("enrolled", "already_enrolled")
    await asyncio.sleep(0.5)
    assert len(smtp.to(statuses[2])) == 1


async def test_an_always_journey_runs_again_after_it_ended_and_sends_again(
    enroll_twice: EnrollTwice, smtp: SmtpSink
) -> None:
    statuses = await enroll_twice(one_email_journey({"policy": "always"}))

    assert statuses[:2] == ("enrolled", "enrolled")
    assert len(await smtp.wait_for(statuses[2], 2)) == 2  # a new run has new effect keys


async def test_a_periodic_journey_waits_out_its_period(enroll_twice: EnrollTwice) -> None:
    statuses = await enroll_twice(
        one_email_journey({"policy": "periodic", "every": timedelta(days=30)})
    )

    assert statuses[:2] == ("enrolled", "already_enrolled")


SCORE_WAIT = define_journey(
    name="score-wait",
    entry="await_ready",
    steps=(
        WaitForEvent(
            id="await_ready",
            conditions=(
                ConditionOutcome(
                    when=(Condition(attribute="score", op="gte", value=30),), next="ready"
                ),
            ),
            timeout=timedelta(minutes=5),
            on_timeout="done",
        ),
        SendEmail(id="ready", template="welcome_next_step", next="done"),
        End(id="done"),
    ),
)


async def test_a_wait_for_a_condition_goes_on_once_an_event_finds_it_holds(
    worker: Worker,
    temporal_client: Client,
    sessions: async_sessionmaker,
    settings: Settings,
    smtp: SmtpSink,
) -> None:
    lead_id, email = await new_lead(sessions, "Ada")
    enrollment = await start_journey(
        temporal_client,
        sessions,
        task_queue=settings.task_queue,
        lead_id=lead_id,
        definition=SCORE_WAIT,
    )
    handle = temporal_client.get_workflow_handle(enrollment.workflow_id, result_type=JourneyOutcome)
    await handle.signal(ENGAGEMENT_SIGNAL, click(1))  # score still 0: keeps waiting
    await asyncio.sleep(0.5)
    assert (await handle.query(PROGRESS_QUERY, result_type=JourneyProgress)).status == "running"

    async with sessions() as session:
        lead = await session.get(Lead, lead_id)
        assert lead is not None
        lead.score_adjustment = 35
        await session.commit()
    await handle.signal(ENGAGEMENT_SIGNAL, click(2))
    outcome = await handle.result()

    assert outcome.emails_sent == ["welcome_next_step"]
    assert (await smtp.wait_for(email, 1))[0]["Subject"] == "Ada, your next step with Nurture Test"
