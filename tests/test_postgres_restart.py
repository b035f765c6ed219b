"""PostgreSQL stopped and started again while journeys are sending: the activities that
meet a dead database fail and are retried; nothing is lost, nothing is sent twice.

It restarts the local Debian cluster that holds the test database (`pg_ctlcluster`), so
it needs that cluster; against a database elsewhere it is skipped.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.client import Client

from db.models import OutboxEmail
from journeys.dsl import End, SendEmail, Wait
from journeys.validation import define_journey
from starter.dev.provisioning.postgres import Cluster, clusters
from starter.dev.smtp_sink import SmtpSink
from starter.services.enrollment import start_journey
from starter.settings import Settings
from starter.worker_wiring import build_worker
from tests.conftest import new_email
from tests.lifecycle_helpers import completed_workflows, create_confirmed_lead, eventually
from workflows.contracts import journey_workflow_id

JOURNEYS = 40
JOURNEY = define_journey(
    name="pg-restart",
    entry="hello",
    steps=(
        SendEmail(id="hello", template="welcome", next="sleep"),
        Wait(id="sleep", duration=timedelta(seconds=1), next="again"),
        SendEmail(id="again", template="welcome_next_step", next="done"),
        End(id="done"),
    ),
)


def _cluster_of(database_url: str) -> Cluster:
    port = make_url(database_url).port or 5432
    found = [c for c in clusters() if c.port == port and c.running]
    if not found:
        pytest.skip("the test database is not on a local Debian cluster this test may restart")
    return found[0]


def _pg_ctl(cluster: Cluster, action: str) -> None:
    subprocess.run(
        ["pg_ctlcluster", cluster.version, cluster.name, action, "--", "-m", "fast"]
        if action == "stop"
        else ["pg_ctlcluster", cluster.version, cluster.name, action],
        check=True,
        capture_output=True,
    )


async def test_journeys_sending_through_a_postgres_restart_lose_nothing_and_send_nothing_twice(
    temporal_client: Client,
    settings: Settings,
    sessions: async_sessionmaker,
    smtp: SmtpSink,
    database_url: str,
) -> None:
    await journeys_through_a_postgres_restart(
        temporal_client, settings, sessions, smtp, database_url
    )


async def journeys_through_a_postgres_restart(
    temporal_client: Client,
    settings: Settings,
    sessions: async_sessionmaker,
    smtp: SmtpSink,
    database_url: str,
) -> None:
    """40 journeys send while the PostgreSQL server holding `database_url` stops for 4 s:
    each email arrives once. On the dev server only Nurture's database goes away; the
    cluster lane (tests/test_cluster.py) runs it with Temporal's databases on it too."""
    cluster = _cluster_of(database_url)
    emails = [new_email("pg") for _ in range(JOURNEYS)]
    lead_ids = [await create_confirmed_lead(sessions, {"email": email}) for email in emails]
    worker = build_worker(
        temporal_client, settings.model_copy(update={"effect_timeout_seconds": 5}), sessions
    )
    async with worker:
        for lead_id in lead_ids:
            await start_journey(
                temporal_client, sessions, task_queue=settings.task_queue, lead_id=lead_id,
                definition=JOURNEY, lifecycle=None, effect_timeout_seconds=5,
            )  # fmt: skip
        # Stop the database mid-stream: some first emails are out, the rest in flight.
        await eventually(lambda: _received(smtp, emails), lambda n: n >= 5, within=30)
        await asyncio.to_thread(_pg_ctl, cluster, "stop")
        sent_while_up = await _received(smtp, emails)
        await asyncio.sleep(4)  # activities fail against the dead database, and retry
        await asyncio.to_thread(_pg_ctl, cluster, "start")

        workflow_ids = [journey_workflow_id(JOURNEY.name, lead_id) for lead_id in lead_ids]

        await eventually(
            lambda: completed_workflows(temporal_client, workflow_ids),
            lambda n: n == JOURNEYS,
            within=120,
        )
        await asyncio.sleep(1)  # room for a duplicate, were there one
        retried = [await _retried_activities(temporal_client, w) for w in workflow_ids]

    assert sent_while_up < 2 * JOURNEYS  # the restart really happened mid-stream
    assert sum(retried) > 0  # activities met the dead database and were retried
    async with sessions() as session:
        query = select(OutboxEmail.lead_id, OutboxEmail.step_id).where(
            OutboxEmail.lead_id.in_(lead_ids)
        )
        per_step = Counter((await session.execute(query)).all())
    assert set(per_step) == {(lead, step) for lead in lead_ids for step in ("hello", "again")}
    assert set(per_step.values()) == {1}
    assert [len(smtp.to(email)) for email in emails] == [2] * JOURNEYS


async def _received(smtp: SmtpSink, emails: list[str]) -> int:
    return sum(len(smtp.to(email)) for email in emails)


async def _retried_activities(client: Client, workflow_id: str) -> int:
    """Activity attempts after the first in the workflow's history."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return sum(
        1
        for event in history.events
        if event.HasField("activity_task_started_event_attributes")
        and event.activity_task_started_event_attributes.attempt > 1
    )
