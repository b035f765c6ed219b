"""Session fixtures: one real Temporal dev server, one PostgreSQL database, one SMTP sink.

Each test gets its own task queue and worker, and its own lead emails, so tests never
see each other's journeys.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from email.message import EmailMessage

import httpx
import pytest
import uvicorn
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from db.engine import create_engine_for, session_factory
from db.migrate import upgrade_to_head
from db.models import Enrollment
from starter.api.app import create_app
from starter.dev.provisioning.postgres import ensure_database
from starter.dev.provisioning.temporal import register_search_attributes, start_dev_server
from starter.dev.simulation import SimulationStack
from starter.dev.smtp_sink import SmtpSink, free_port, start_sink
from starter.inbound.listener import InboundHandler, serve
from starter.settings import Settings
from starter.worker_wiring import build_worker
from workflows import search_attributes
from workflows.contracts import lead_workflow_id

# The browser fixture (`page`) for the pages a person uses.
pytest_plugins = ["tests.browser"]

MARKETING_KEY = "marketing-" + secrets.token_hex(12)
SALES_KEY = "sales-" + secrets.token_hex(12)  # a sales manager's key: every lead
REP_KEYS = {rep: f"rep-{rep}-" + secrets.token_hex(12) for rep in ("alex", "sam", "kim")}
ADMIN_KEY = "admin-" + secrets.token_hex(12)
CRM_SECRET = secrets.token_urlsafe(24)


@pytest.fixture(scope="session")
def database_url() -> str:
    """A migrated PostgreSQL database (provisioned on this machine when none is configured)."""
    url = ensure_database()
    upgrade_to_head(url)
    return url


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine_for(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def sessions(engine: AsyncEngine) -> async_sessionmaker:
    return session_factory(engine)


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    """A real Temporal dev server (the pinned CLI), with our search attributes registered."""
    env = await start_dev_server()
    await register_search_attributes(env.client, "default", search_attributes.ALL)
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
def temporal_client(temporal_env: WorkflowEnvironment) -> Client:
    return temporal_env.client


@pytest.fixture(scope="session")
def smtp() -> Iterator[SmtpSink]:
    """A real SMTP server on loopback collecting every message."""
    controller, sink = start_sink()
    sink.port = controller.port  # type: ignore[attr-defined]  # the port, known once started
    yield sink
    controller.stop()


@pytest.fixture
def task_queue() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def settings(
    database_url: str, temporal_client: Client, smtp: SmtpSink, task_queue: str
) -> Settings:
    return Settings(
        TEMPORAL_ADDRESS=temporal_client.service_client.config.target_host,
        NURTURE_TASK_QUEUE=task_queue,
        DATABASE_URL=database_url,
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=smtp.port,  # type: ignore[attr-defined]  # set by the smtp fixture
        MAIL_FROM="Nurture Test <hello@nurture.example>",
        PUBLIC_BASE_URL="http://nurture.example",
        NURTURE_SECRET_KEY=secrets.token_urlsafe(32),
        NURTURE_API_KEYS=",".join(
            [
                f"marketing:{MARKETING_KEY}",
                f"sales:{SALES_KEY}",
                f"admin:{ADMIN_KEY}",
                *(f"sales:{rep}:{key}" for rep, key in REP_KEYS.items()),
            ]
        ),
        CRM_WEBHOOK_SECRET=CRM_SECRET,
        # Tests send at any hour and as often as they like, unless a test says otherwise.
        NURTURE_QUIET_HOURS="",
        NURTURE_FREQUENCY_CAP="",
    )


@pytest.fixture
async def worker(
    temporal_client: Client, settings: Settings, sessions: async_sessionmaker
) -> AsyncIterator[Worker]:
    """A worker on this test's own task queue."""
    worker = build_worker(temporal_client, settings, sessions)
    async with worker:
        yield worker


@pytest.fixture
async def api_url(settings: Settings) -> AsyncIterator[str]:
    """The real HTTP API (uvicorn on a loopback port), built by `create_app(settings)`."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


@pytest.fixture
async def api(api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the API with a marketing key."""
    async with httpx.AsyncClient(
        base_url=api_url, headers={"Authorization": f"Bearer {MARKETING_KEY}"}, timeout=30
    ) as client:
        yield client


@pytest.fixture
def threaded_api_url(settings: Settings) -> Iterator[str]:
    """The API served from its own thread, so schemathesis' blocking client can call it."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
        )
    )
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the API did not start")
        threading.Event().wait(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)


def new_email(prefix: str = "lead") -> str:
    """An address no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}@example.com"


def body_text(mail: EmailMessage, subtype: str) -> str:
    """The content of `mail`'s text/`subtype` body ("html" or "plain"), which must be there."""
    part = mail.get_body((subtype,))
    assert part is not None, f"no text/{subtype} body"
    content: str = part.get_content()
    return content


@pytest.fixture(scope="module")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """The Java time-skipping test server: weeks of journey time in seconds. One per test
    module: its clock skips only while nothing is in flight, so a workflow one module
    leaves behind must not freeze the next module's time."""
    from starter.dev.provisioning.test_server import start_time_skipping

    env = await start_time_skipping()
    await register_search_attributes(env.client, "default", search_attributes.ALL)
    yield env
    await env.shutdown()


@pytest.fixture
async def simulation(
    time_skipping_env: WorkflowEnvironment, sessions: async_sessionmaker
) -> AsyncIterator[SimulationStack]:
    """The simulation machinery of `nurture simulate`, on this suite's PostgreSQL."""
    from starter.dev.simulation import simulation_stack

    async with simulation_stack(
        env=time_skipping_env,
        sessions=sessions,
        overrides={"NURTURE_QUIET_HOURS": "", "NURTURE_FREQUENCY_CAP": ""},
    ) as stack:
        yield stack


@pytest.fixture
async def leads(simulation: SimulationStack) -> AsyncIterator[list[str]]:
    """Leads a test creates; their workflows are ended afterwards, so that their timers don't
    keep the shared time-skipping server's clock busy in later tests."""
    created: list[str] = []
    yield created
    async with simulation.sessions() as session:
        journeys = (
            await session.execute(
                select(Enrollment.workflow_id).where(Enrollment.lead_id.in_(created))
            )
        ).scalars()
        workflow_ids = [*journeys, *(lead_workflow_id(lead_id) for lead_id in created)]
    for workflow_id in workflow_ids:
        with contextlib.suppress(RPCError):
            await simulation.client.get_workflow_handle(workflow_id).terminate("test over")


# The bounce domain of the inbound listener in the tests (NURTURE_BOUNCE_DOMAIN).
BOUNCE_DOMAIN = "bounces.mail.example"


@pytest.fixture
async def listener(
    settings: Settings, sessions: async_sessionmaker, temporal_client: Client
) -> AsyncIterator[int]:
    """`nurture inbound` for the bounce domain, handing messages to this test's worker."""
    handler = InboundHandler(sessions, temporal_client, settings.task_queue, BOUNCE_DOMAIN)
    port = free_port()
    async with await serve(handler, "127.0.0.1", port):
        yield port
