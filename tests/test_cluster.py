"""The production shape (docs/operations.md): Temporal as four services (frontend, history,
matching, worker) on PostgreSQL with SQL visibility, started by `nurture cluster`'s code;
Nurture as two worker processes and two API processes on one task queue, requests
alternating between the APIs. Then faults across them: a worker SIGKILLed mid-send, the
history service SIGKILLed while timers fall due, the matching service restarted under load;
PostgreSQL (Temporal's databases and Nurture's) restarted while journeys send; and a
rolling deploy of a patched journey change across two workers.

The lane is marked `cluster`: `.ci/run` runs it; `-m "not cluster"` leaves it out locally.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from itertools import cycle

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.api.enums.v1 import EventType, WorkflowTaskFailedCause
from temporalio.client import Client

from db.models import CrmHandover, OutboxEmail
from journeys.dsl import End, SendEmail, Wait
from journeys.validation import define_journey
from starter.dev.provisioning.cluster import (
    ClusterSpec,
    LocalCluster,
    Postgres,
    Service,
    ensure_binaries,
)
from starter.dev.provisioning.temporal import register_search_attributes
from starter.dev.smtp_sink import SmtpSink, free_port
from starter.services.enrollment import start_journey
from starter.services.lead_workflow import LeadLifecycle
from starter.settings import Settings
from starter.temporal_client import connect
from starter.worker_wiring import build_worker
from tests.conftest import CRM_SECRET, MARKETING_KEY, new_email
from tests.http_servers import serving
from tests.lifecycle_helpers import completed_workflows, create_confirmed_lead, decider, eventually
from tests.next_release import FAREWELL, FAREWELL_STEP
from tests.test_handover_crash import ROOT, start_worker
from tests.test_postgres_restart import journeys_through_a_postgres_restart
from tests.test_worker_kills import (
    EFFECT_TIMEOUT,
    JOURNEY,
    JOURNEYS,
    CountingCrm,
    HoldingSink,
    _create_leads,
    finished_and_handed_over,
    lead_handovers,
)
from workflows import search_attributes
from workflows.contracts import journey_workflow_id, lead_workflow_id

pytestmark = pytest.mark.cluster

Process = asyncio.subprocess.Process


# -- the cluster -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def cluster(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LocalCluster]:
    """Four Temporal services on databases of this run's own (dropped afterwards)."""
    binaries = await asyncio.to_thread(ensure_binaries)  # built once with Go, then cached
    suffix = uuid.uuid4().hex[:8]
    spec = ClusterSpec(
        state_dir=tmp_path_factory.mktemp("cluster"),
        postgres=Postgres.from_url(database_url),
        database=f"temporal_test_{suffix}",
        visibility_database=f"temporal_test_visibility_{suffix}",
        shards=4,
        # The lane's processes share one PostgreSQL (max_connections 100) with whatever
        # else runs: small pools here and in Nurture's processes (POOL below).
        max_connections=6,
        max_visibility_connections=2,
    )
    local = LocalCluster(spec, binaries)
    try:
        await local.start_ready()
        yield local
    finally:
        await asyncio.to_thread(local.stop)
        await asyncio.to_thread(local.drop_databases)


@pytest.fixture(scope="module")
async def temporal_client(cluster: LocalCluster) -> Client:
    """Overrides conftest's dev server for this module: `settings`, `worker` and the rest
    talk to the cluster's frontend."""
    client = await connect(cluster.address, "default")
    await register_search_attributes(client, "default", search_attributes.ALL)
    return client


# -- Nurture as separate processes -----------------------------------------------------------


def nurture_env(settings: Settings, crm_url: str, **extra: str) -> dict[str, str]:
    """The environment of a `nurture worker` or `nurture api` process for `settings`."""
    return {
        **os.environ,
        "TEMPORAL_ADDRESS": settings.temporal_address or "",
        "NURTURE_TASK_QUEUE": settings.task_queue,
        "DATABASE_URL": settings.effective_database_url,
        "SMTP_HOST": settings.smtp_host,
        "SMTP_PORT": str(settings.smtp_port),
        "MAIL_FROM": settings.mail_from,
        "PUBLIC_BASE_URL": settings.public_base_url,
        "NURTURE_SECRET_KEY": settings.require_secret_key(),
        "NURTURE_API_KEYS": f"marketing:{MARKETING_KEY}",
        "CRM_ADAPTER": "webhook",
        "CRM_WEBHOOK_URL": crm_url,
        "CRM_WEBHOOK_SECRET": CRM_SECRET,
        "NURTURE_QUIET_HOURS": "",
        "NURTURE_FREQUENCY_CAP": "",
        "NURTURE_DATABASE_POOL_SIZE": POOL,
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


POOL = "5"  # connections per Nurture process (twice that at peak)
_DRAINS: set[asyncio.Task[bytes]] = set()


async def spawn(args: list[str], env: dict[str, str], ready: bytes) -> Process:
    """Start a process and wait for `ready` in its output (then keep draining it)."""
    process = await asyncio.create_subprocess_exec(
        *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    assert process.stdout is not None
    seen = b""
    while ready not in seen:
        line = await asyncio.wait_for(process.stdout.readline(), 90)
        assert line, seen.decode()[-3000:]
        seen += line
    drain = asyncio.get_running_loop().create_task(process.stdout.read())
    _DRAINS.add(drain)
    drain.add_done_callback(_DRAINS.discard)
    return process


async def start_api(env: dict[str, str]) -> tuple[Process, str]:
    port = free_port()
    process = await spawn(
        [sys.executable, "-m", "starter.cli.app", "api", "--port", str(port)],
        env,
        b"Application startup complete",
    )
    return process, f"http://127.0.0.1:{port}"


async def stop_all(processes: list[Process]) -> None:
    for process in processes:
        if process.returncode is None:
            process.terminate()
    for process in processes:
        await asyncio.wait_for(process.wait(), 60)


@dataclass
class Stack:
    """Two workers and two APIs on one task queue; `api()` alternates between the APIs."""

    settings: Settings
    crm: CountingCrm
    apis: list[httpx.AsyncClient]
    _turns: Iterator[httpx.AsyncClient] = field(init=False)

    def __post_init__(self) -> None:
        self._turns = cycle(self.apis)

    def api(self) -> httpx.AsyncClient:
        return next(self._turns)


@pytest.fixture(scope="class")
async def stack(temporal_client: Client, database_url: str, smtp: SmtpSink) -> AsyncIterator[Stack]:
    settings = Settings(
        TEMPORAL_ADDRESS=temporal_client.service_client.config.target_host,
        NURTURE_TASK_QUEUE=f"cluster-{uuid.uuid4().hex[:8]}",
        DATABASE_URL=database_url,
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=smtp.port,  # type: ignore[attr-defined]  # set by the smtp fixture
        MAIL_FROM="Nurture Test <hello@nurture.example>",
        PUBLIC_BASE_URL="http://nurture.example",
        NURTURE_SECRET_KEY=secrets.token_urlsafe(32),
    )
    crm = CountingCrm()
    processes: list[Process] = []
    async with serving(crm.app()) as crm_base:
        env = nurture_env(settings, f"{crm_base}/crm")
        try:
            workers = [
                spawn([sys.executable, str(ROOT / "worker.py")], env, b"worker on")
                for _ in range(2)
            ]
            processes += await asyncio.gather(*workers)
            apis = await asyncio.gather(start_api(env), start_api(env))
            processes += [process for process, _ in apis]
            clients = [
                httpx.AsyncClient(
                    base_url=url, headers={"Authorization": f"Bearer {MARKETING_KEY}"}, timeout=30
                )
                for _, url in apis
            ]
            yield Stack(settings, crm, clients)
            for client in clients:
                await client.aclose()
        finally:
            await stop_all(processes)


async def enroll(stack: Stack, lead: dict[str, object]) -> dict[str, str]:
    response = await stack.api().post(
        "/v1/enrollments",
        json={"journey": "welcome", "lead": lead, "consent": {"source": "test", "confirmed": True}},
    )
    assert response.status_code == 202, response.text
    body: dict[str, str] = response.json()
    return body


def tracked_link(mail: EmailMessage) -> str:
    part = mail.get_body(("html",))
    assert part is not None
    found = re.search(r'href="https?://[^/"]+(/t/c/[^"]+)"', part.get_content())
    assert found, "no tracked link in the email"
    return found.group(1).replace("&amp;", "&")


async def qualify(stack: Stack, sessions: async_sessionmaker, lead: dict[str, object]) -> str:
    lead_id = (await enroll(stack, lead))["lead_id"]
    response = await stack.api().post(
        "/v1/events", json={"lead_id": lead_id, "type": "demo_request", "event_id": "demo-1"}
    )
    assert response.status_code == 202, response.text
    return lead_id


class TestTheSliceOnTwoWorkersAndTwoApis:
    """The end-to-end slice; the processes (`stack`) live for this class only, so the
    fault tests below run without them."""

    async def test_an_enrollment_on_the_cluster_sends_the_welcome_email(
        self, stack: Stack, smtp: SmtpSink
    ) -> None:
        email = new_email("cluster")
        await enroll(stack, {"email": email, "first_name": "Grace"})

        [welcome] = await smtp.wait_for(email, 1, within=60)
        assert welcome["Subject"] == "Welcome to Nurture Test, Grace"

    async def test_a_click_on_the_other_api_sends_the_next_email(
        self, stack: Stack, smtp: SmtpSink, temporal_client: Client
    ) -> None:
        email = new_email("cluster")
        body = await enroll(stack, {"email": email, "first_name": "Alan"})  # one API …
        [welcome] = await smtp.wait_for(email, 1, within=60)

        click = await stack.api().get(tracked_link(welcome), follow_redirects=False)  # … the other

        assert click.status_code in (302, 303), click.text
        await temporal_client.get_workflow_handle(body["workflow_id"]).result()
        _welcome, next_step = await smtp.wait_for(email, 2, within=60)
        assert next_step["Subject"] == "Alan, your next step with Nurture Test"

    async def test_a_qualified_lead_is_handed_to_the_crm_once(
        self, stack: Stack, sessions: async_sessionmaker
    ) -> None:
        lead_id = await qualify(stack, sessions, decider())

        async def delivered() -> list[CrmHandover]:
            async with sessions() as session:
                query = select(CrmHandover).where(CrmHandover.lead_id == lead_id)
                rows = (await session.execute(query)).scalars().all()
            return [row for row in rows if row.delivered_at is not None]

        [handover] = await eventually(delivered, lambda rows: len(rows) == 1, within=60)
        await asyncio.sleep(1)  # room for a second delivery, were there one
        assert stack.crm.keys.count(handover.idempotency_key) == 1

    async def test_journeys_and_leads_are_found_by_search_attributes_on_sql_visibility(
        self, stack: Stack, sessions: async_sessionmaker, temporal_client: Client
    ) -> None:
        lead_id = await qualify(stack, sessions, decider())
        journey_id = journey_workflow_id("welcome", lead_id)
        journeys = f"NurtureJourney = 'welcome' AND WorkflowId = '{journey_id}'"
        leads = (
            f"WorkflowId = '{lead_workflow_id(lead_id)}' "
            "AND NurtureStage = 'mql' AND NurtureScore > 80 AND NurtureOwner = 'kim'"
        )

        async def listed(query: str) -> list[str]:
            return [found.id async for found in temporal_client.list_workflows(query)]

        assert await eventually(lambda: listed(journeys), bool, within=60) == [journey_id]
        assert await eventually(lambda: listed(leads), bool, within=60) == [
            lead_workflow_id(lead_id)
        ]


# -- faults ----------------------------------------------------------------------------------


class HoldEverySink(HoldingSink):
    """While armed, every message is accepted and then held before the "250" until
    released: whichever worker is sending then has a send in that window."""

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        message = message_from_bytes(envelope.original_content or b"", policy=policy.default)
        with self._lock:
            self.messages.append(message)
        if self.armed.is_set():
            self.holding.set()
            await asyncio.get_running_loop().run_in_executor(None, self.release.wait, 30)
        return "250 Message accepted for delivery"


@pytest.fixture
def holding_sink() -> Iterator[tuple[HoldEverySink, int]]:
    sink = HoldEverySink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield sink, controller.port
    sink.release.set()
    controller.stop()


@pytest.fixture
async def counting_crm() -> AsyncIterator[tuple[CountingCrm, str]]:
    crm = CountingCrm()
    async with serving(crm.app()) as url:
        yield crm, f"{url}/crm"


async def sent_once_each(
    sessions: async_sessionmaker, sink: HoldingSink, lead_ids: list[str], emails: list[str]
) -> None:
    """Every (lead, step) of JOURNEY has one outbox row and arrived exactly once."""
    async with sessions() as session:
        query = select(OutboxEmail.lead_id, OutboxEmail.step_id, OutboxEmail.message_id).where(
            OutboxEmail.lead_id.in_(lead_ids),
            OutboxEmail.workflow_id.like(journey_workflow_id(JOURNEY.name, "%")),
        )
        outbox = (await session.execute(query)).all()
    per_step = Counter((lead, step) for lead, step, _ in outbox)
    assert set(per_step) == {(lead, step) for lead in lead_ids for step in ("hello", "again")}
    assert set(per_step.values()) == {1}
    received = Counter(m["Message-ID"] for email in emails for m in sink.to(email))
    assert set(received) == {message_id for _, _, message_id in outbox}
    assert set(received.values()) == {1}


async def test_two_hundred_journeys_finish_once_each_when_one_of_two_workers_is_killed(
    temporal_client: Client,
    settings: Settings,
    sessions: async_sessionmaker,
    holding_sink: tuple[HoldEverySink, int],
    counting_crm: tuple[CountingCrm, str],
) -> None:
    sink, smtp_port = holding_sink
    crm, crm_url = counting_crm
    worker_settings = settings.model_copy(update={"smtp_port": smtp_port})
    lead_ids, emails, qualified = await _create_leads(sessions)
    lifecycle = LeadLifecycle(temporal_client, settings.task_queue, EFFECT_TIMEOUT)
    extra_env = {"NURTURE_EFFECT_TIMEOUT": str(EFFECT_TIMEOUT), "NURTURE_DATABASE_POOL_SIZE": POOL}
    doomed, survivor = await asyncio.gather(
        start_worker(worker_settings, crm_url, **extra_env),
        start_worker(worker_settings, crm_url, **extra_env),
    )
    try:
        gate = asyncio.Semaphore(20)  # starts in parallel, as API replicas would make them

        async def start(lead_id: str) -> None:
            async with gate:
                await start_journey(
                    temporal_client, sessions, task_queue=settings.task_queue, lead_id=lead_id,
                    definition=JOURNEY, lifecycle=lifecycle, effect_timeout_seconds=EFFECT_TIMEOUT,
                )  # fmt: skip

        await asyncio.gather(*(start(lead_id) for lead_id in lead_ids))
        # Hold every "250" for a moment, so the killed worker dies with sends the SMTP
        # server has accepted and it never heard of; the survivor must not repeat them.
        sink.armed.set()
        held = await asyncio.to_thread(sink.holding.wait, 30)
        assert held, "no message was sent while armed"
        await asyncio.sleep(0.5)
        doomed.kill()
        await doomed.wait()
        sink.armed.clear()
        sink.release.set()

        async def received() -> int:  # cheap to poll, unlike 200 workflow descriptions
            return sum(len(sink.to(email)) for email in emails)

        await eventually(received, lambda count: count >= 2 * JOURNEYS, within=300)
        await finished_and_handed_over(temporal_client, sessions, lead_ids, within=60)
        assert survivor.returncode is None, "the surviving worker died"
    finally:
        survivor.terminate()
        await asyncio.wait_for(survivor.wait(), 60)

    await sent_once_each(sessions, sink, lead_ids, emails)
    rows = await lead_handovers(sessions, lead_ids)
    assert Counter(r.lead_id for r in rows) == Counter(qualified)
    assert set(crm.keys) == {r.idempotency_key for r in rows}


TIMER = timedelta(seconds=8)
TIMER_JOURNEY = define_journey(
    name="cluster-timers",
    entry="hello",
    steps=(
        SendEmail(id="hello", template="welcome", next="sleep"),
        Wait(id="sleep", duration=TIMER, next="again"),
        SendEmail(id="again", template="welcome_next_step", next="done"),
        End(id="done"),
    ),
)


async def timer_started(client: Client, workflow_id: str) -> bool:
    events = client.get_workflow_handle(workflow_id).fetch_history_events()
    return any([e.event_type == EventType.EVENT_TYPE_TIMER_STARTED async for e in events])


async def test_timers_due_while_the_history_service_is_down_fire_once_after_it_restarts(
    cluster: LocalCluster,
    temporal_client: Client,
    settings: Settings,
    sessions: async_sessionmaker,
    smtp: SmtpSink,
) -> None:
    emails = [new_email("history") for _ in range(20)]
    worker = build_worker(temporal_client, settings, sessions)
    running = asyncio.create_task(worker.run())
    try:
        workflow_ids = []
        for email in emails:
            lead_id = await create_confirmed_lead(sessions, {"email": email})
            await start_journey(
                temporal_client, sessions, task_queue=settings.task_queue, lead_id=lead_id,
                definition=TIMER_JOURNEY, lifecycle=None, effect_timeout_seconds=5,
            )  # fmt: skip
            workflow_ids.append(journey_workflow_id(TIMER_JOURNEY.name, lead_id))
        for workflow_id in workflow_ids:  # first email sent, timer started
            await eventually(lambda w=workflow_id: timer_started(temporal_client, w), bool)

        await asyncio.to_thread(cluster.kill_service, Service.HISTORY)  # 20 timers pending …
        await asyncio.sleep(TIMER.total_seconds() + 2)  # … fall due while it is dead
        await asyncio.to_thread(cluster.start_service, Service.HISTORY)

        for email in emails:
            await smtp.wait_for(email, 2, within=120)
        await asyncio.sleep(2)  # room for a timer firing twice
    finally:
        await worker.shutdown()
        await running

    assert [len(smtp.to(email)) for email in emails] == [2] * len(emails)


LOAD = 60
LOAD_JOURNEY = define_journey(
    name="cluster-matching",
    entry="hello",
    steps=(
        SendEmail(id="hello", template="welcome", next="sleep"),
        Wait(id="sleep", duration=timedelta(seconds=2), next="again"),
        SendEmail(id="again", template="welcome_next_step", next="done"),
        End(id="done"),
    ),
)


async def test_journeys_under_load_survive_a_matching_service_restart_without_a_duplicate(
    cluster: LocalCluster,
    temporal_client: Client,
    settings: Settings,
    sessions: async_sessionmaker,
    smtp: SmtpSink,
) -> None:
    emails = [new_email("matching") for _ in range(LOAD)]
    lead_ids = [await create_confirmed_lead(sessions, {"email": email}) for email in emails]
    worker = build_worker(temporal_client, settings, sessions)
    running = asyncio.create_task(worker.run())
    try:
        starts = [
            start_journey(
                temporal_client, sessions, task_queue=settings.task_queue, lead_id=lead_id,
                definition=LOAD_JOURNEY, lifecycle=None, effect_timeout_seconds=5,
            )
            for lead_id in lead_ids
        ]  # fmt: skip
        await asyncio.gather(*starts)

        async def sent() -> int:
            return sum(len(smtp.to(email)) for email in emails)

        await eventually(sent, lambda count: count >= LOAD // 4, within=60)  # mid-flight
        await asyncio.to_thread(cluster.kill_service, Service.MATCHING)
        await asyncio.sleep(2)
        await asyncio.to_thread(cluster.start_service, Service.MATCHING)

        workflow_ids = [journey_workflow_id(LOAD_JOURNEY.name, lead_id) for lead_id in lead_ids]
        await eventually(
            lambda: completed_workflows(temporal_client, workflow_ids),
            lambda done: done == LOAD,
            within=180,
        )
        await asyncio.sleep(2)  # room for a duplicate, were there one
    finally:
        await worker.shutdown()
        await running

    assert [len(smtp.to(email)) for email in emails] == [2] * LOAD


# -- a rolling deploy ------------------------------------------------------------------------

ROLL_TIMER = timedelta(seconds=10)
ROLL_JOURNEY = define_journey(
    name="cluster-rolling",
    entry="hello",
    steps=(
        SendEmail(id="hello", template="welcome", next="sleep"),
        Wait(id="sleep", duration=ROLL_TIMER, next="again"),
        SendEmail(id="again", template="welcome_next_step", next="done"),
        End(id="done"),
    ),
)
ROLL_GROUP = 15
NONDETERMINISTIC = WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_NON_DETERMINISTIC_ERROR


async def _task_workers(client: Client, workflow_id: str) -> tuple[set[str], int, bool]:
    """Who completed the workflow's tasks (worker identities), how many of its tasks failed
    for nondeterminism, and whether it recorded the next release's patch marker."""
    identities: set[str] = set()
    nondeterministic, marked = 0, False
    async for event in client.get_workflow_handle(workflow_id).fetch_history_events():
        if event.HasField("workflow_task_completed_event_attributes"):
            identities.add(event.workflow_task_completed_event_attributes.identity)
        elif event.HasField("workflow_task_failed_event_attributes"):
            cause = event.workflow_task_failed_event_attributes.cause
            nondeterministic += cause == NONDETERMINISTIC
        elif event.HasField("marker_recorded_event_attributes"):
            marked = marked or FAREWELL.encode() in event.SerializeToString()
    return identities, nondeterministic, marked


async def test_a_rolling_deploy_of_a_patched_journey_change_loses_nothing_and_sends_nothing_twice(
    temporal_client: Client,
    settings: Settings,
    sessions: async_sessionmaker,
    smtp: SmtpSink,
    counting_crm: tuple[CountingCrm, str],
) -> None:
    """Today's worker and the next release's (tests/next_release.py: a farewell email at a
    journey's end, behind `workflow.patched`) on one task queue, journeys in flight on both;
    then the old worker stops, as the last step of the rollout."""
    # No workflow cache, so no sticky queue: every workflow task goes to whichever worker
    # polls first, the widest mixing of releases a rollout can produce.
    env = nurture_env(
        settings, counting_crm[1], NURTURE_WORKER_MAX_CACHED_WORKFLOWS="0",
        NURTURE_EFFECT_TIMEOUT="5",
    )  # fmt: skip
    emails = [new_email("rolling") for _ in range(2 * ROLL_GROUP)]
    lead_ids = [await create_confirmed_lead(sessions, {"email": email}) for email in emails]
    workflow_ids = [journey_workflow_id(ROLL_JOURNEY.name, lead_id) for lead_id in lead_ids]

    async def start(lead_id: str) -> None:
        await start_journey(
            temporal_client, sessions, task_queue=settings.task_queue, lead_id=lead_id,
            definition=ROLL_JOURNEY, lifecycle=None, effect_timeout_seconds=5,
        )  # fmt: skip

    async def sent(step: str) -> int:
        async with sessions() as session:
            query = select(OutboxEmail.lead_id).where(
                OutboxEmail.lead_id.in_(lead_ids), OutboxEmail.step_id == step
            )
            return len((await session.execute(query)).all())

    old = await spawn([sys.executable, str(ROOT / "worker.py")], env, b"worker on")
    processes = [old]
    try:
        await asyncio.gather(*(start(lead_id) for lead_id in lead_ids[:ROLL_GROUP]))
        await eventually(lambda: sent("hello"), lambda n: n == ROLL_GROUP, within=60)
        # The rollout begins: a worker of the next release joins while the first journeys
        # sleep; more journeys start with both releases polling.
        release = "from tests.next_release import main; main()"
        new = await spawn([sys.executable, "-c", release], env, b"worker on")
        processes.append(new)
        await asyncio.gather(*(start(lead_id) for lead_id in lead_ids[ROLL_GROUP:]))
        await eventually(lambda: sent("again"), lambda n: n == 2 * ROLL_GROUP, within=120)
        await asyncio.sleep(3)  # both still polling while the last journeys end
        old.terminate()  # the rollout ends
        await asyncio.wait_for(old.wait(), 60)
        await eventually(
            lambda: completed_workflows(temporal_client, workflow_ids),
            lambda done: done == len(workflow_ids),
            within=180,
        )
        await asyncio.sleep(2)  # room for a duplicate, were there one
    finally:
        await stop_all(processes)

    async with sessions() as session:
        query = select(OutboxEmail.lead_id, OutboxEmail.step_id, OutboxEmail.message_id).where(
            OutboxEmail.lead_id.in_(lead_ids)
        )
        outbox = (await session.execute(query)).all()
    per_step = Counter((lead, step) for lead, step, _ in outbox)
    assert {(lead, s) for lead in lead_ids for s in ("hello", "again")} <= set(per_step)
    assert set(per_step.values()) == {1}  # nothing twice, the farewell included
    received = Counter(m["Message-ID"] for email in emails for m in smtp.to(email))
    assert set(received) == {message_id for _, _, message_id in outbox}
    assert set(received.values()) == {1}

    histories = await asyncio.gather(*(_task_workers(temporal_client, w) for w in workflow_ids))
    releases = {f"{old.pid}@", f"{new.pid}@"}
    on_both = [ids for ids, _, _ in histories if {i.split("@")[0] + "@" for i in ids} >= releases]
    assert on_both, "no journey had tasks on both releases"
    farewells = {lead for lead, step in per_step if step == FAREWELL_STEP}
    # The farewell went exactly to the journeys that took the new branch (recorded the
    # marker), and some journeys ended on the old code without it.
    marked = {lead for lead, (_, _, m) in zip(lead_ids, histories, strict=True) if m}
    assert farewells == marked
    assert 0 < len(farewells) < len(lead_ids)
    # An old worker met the new branch's history: its task failed and went to the new one.
    assert sum(failed for _, failed, _ in histories) > 0


# -- PostgreSQL restarted under Temporal and Nurture ----------------------------------------


async def test_journeys_sending_through_a_restart_of_the_cluster_s_postgres_lose_nothing(
    cluster: LocalCluster,
    temporal_client: Client,
    settings: Settings,
    sessions: async_sessionmaker,
    smtp: SmtpSink,
    database_url: str,
) -> None:
    """The PostgreSQL server holding Temporal's two databases and Nurture's stops for 4 s
    while journeys send: Temporal's services and the worker reconnect, each email once."""
    await journeys_through_a_postgres_restart(
        temporal_client, settings, sessions, smtp, database_url
    )
    assert all(not cluster.exited(service) for service in Service)  # none gave up
