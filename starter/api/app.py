"""The HTTP API: `create_app(settings)` builds it; `nurture api` serves it with uvicorn.

The routes live in `starter/api/routes/` (one router per resource), what they depend on in
`starter/api/deps.py`, how refusals become answers in `starter/api/problems.py`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from db.engine import create_engine_for, session_factory
from db.migrate import upgrade_to_head
from starter.api.deps import ApiState, Connections, install_state
from starter.api.openapi import document_common_errors
from starter.api.problems import answer_problems
from starter.api.request_guard import RequestGuard
from starter.api.routes import (
    broadcasts,
    email_links,
    enrollments,
    esp_webhooks,
    events,
    forms,
    health,
    inbound,
    inbox,
    leads,
    preferences,
    reports,
    sales,
    segments,
    signup,
    templates,
)
from starter.api.security_headers import SecurityHeaders
from starter.services.click_counts import ClickCounts
from starter.services.event_intake import EventIntake
from starter.services.lead_workflow import LeadLifecycle
from starter.settings import Settings
from starter.temporal_client import connect

# Where the Temporal frontend is, for as long as the context lasts. `nurture api` passes the
# dev stack's (which may start an embedded server); the default takes the configured one.
TemporalAddress = Callable[[Settings], AbstractAsyncContextManager[str]]

ROUTERS = (
    enrollments,
    forms,
    events,
    leads,
    sales,
    reports,
    segments,
    broadcasts,
    templates,
    email_links,
    preferences,
    signup,
    inbox,
    inbound,
    esp_webhooks,
)


@asynccontextmanager
async def configured_address(settings: Settings) -> AsyncIterator[str]:
    """`TEMPORAL_ADDRESS`, or Temporal's default frontend on this machine."""
    yield settings.temporal_address or "127.0.0.1:7233"


def create_app(
    settings: Settings, *, temporal_address: TemporalAddress = configured_address
) -> FastAPI:
    """The API for `settings`; start-up migrates the database and connects to Temporal."""
    state = ApiState.of(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            url = settings.effective_database_url
            await asyncio.to_thread(upgrade_to_head, url)
            engine = create_engine_for(url, pool_size=settings.database_pool_size)
            stack.push_async_callback(engine.dispose)
            address = await stack.enter_async_context(temporal_address(settings))
            client = await connect(address, settings.temporal_namespace)
            lifecycle = LeadLifecycle(
                client,
                settings.task_queue,
                settings.effect_timeout_seconds,
                settings.local_bookkeeping,
            )
            sessions = session_factory(engine)
            intake = EventIntake(client, sessions, lifecycle)
            intake.start()
            stack.push_async_callback(intake.close)
            clicks = ClickCounts(sessions)
            clicks.start()
            stack.push_async_callback(clicks.close)
            state.connections = Connections(client, sessions, lifecycle, intake, clicks)
            try:
                yield
            finally:
                state.connections = None

    app = FastAPI(
        title="Nurture",
        version="0.1.0",
        summary="Buyer journeys as durable workflows: enroll leads, report engagement, read leads.",
        lifespan=lifespan,
    )
    install_state(app, state)
    # Added last = runs first: headers on every answer, the guard's refusals included.
    app.add_middleware(RequestGuard, api_keys=state.api_keys, failures=state.failed_auth)
    app.add_middleware(SecurityHeaders, https=settings.public_base_url.startswith("https://"))
    answer_problems(app)
    for module in ROUTERS:
        app.include_router(module.router)
    app.include_router(health.router)
    document_common_errors(app)
    return app
