"""Simulating a journey: the real workflow and activities on a time-skipping Temporal server.

Weeks of journey time pass in seconds: timers fire as soon as nothing else is running.
Emails really are rendered and delivered, to a local SMTP sink; the database is a
throw-away SQLite file unless the caller hands in sessions (the tests use PostgreSQL).
`nurture simulate` and the multi-week tests both use `SimulationStack`.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import tempfile
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from db.engine import create_engine_for, session_factory
from db.migrate import upgrade_to_head
from db.models import CrmHandover, Lead
from journeys.dsl import JourneyDefinition, Wait
from journeys.personas import Persona
from starter.dev.provisioning.temporal import register_search_attributes
from starter.dev.provisioning.test_server import start_time_skipping
from starter.dev.smtp_sink import SmtpSink, start_sink
from starter.services.enrollment import start_journey
from starter.services.events import EventIn, record_event
from starter.services.journey_signals import journeys_of
from starter.services.lead_workflow import LeadLifecycle
from starter.settings import Settings
from workflows import search_attributes
from workflows.contracts import TIMELINE_QUERY, TimelineEntry, lead_workflow_id

_EVENT_SPEC = re.compile(r"^\s*(\d+(?:\.\d+)?)([dhm])\s*:\s*([a-z_]+)\s*(?:\{([^{}]*)\})?\s*$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


@dataclass(frozen=True)
class SimulatedEvent:
    """An engagement event `after` the enrollment."""

    after: timedelta
    type: str
    properties: dict[str, str] = field(default_factory=dict)


def parse_events(spec: str) -> list[SimulatedEvent]:
    """Parse `3d:email_click,10d:download,36h:page_view{url=/pricing}`: a time after the
    enrollment, a declared event type and optional properties; errors name the bad piece
    (and a custom type's bad property)."""
    events = []
    for piece in _pieces(spec):
        match = _EVENT_SPEC.match(piece)
        if not match:
            raise ValueError(
                f"{piece.strip()!r}: expected <number><d|h|m>:<event type>[{{key=value;…}}]"
            )
        amount, unit, kind, raw = match.groups()
        properties = _properties(piece, raw or "")
        try:
            checked = EventIn.model_validate(
                {"lead_id": uuid.UUID(int=0), "type": kind, "event_id": "x",
                 "properties": properties}
            )  # fmt: skip
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise ValueError(f"{piece.strip()!r}: {where}: {first['msg']}") from None
        events.append(
            SimulatedEvent(
                timedelta(**{_UNITS[unit]: float(amount)}), checked.type.value, properties
            )
        )
    return sorted(events, key=lambda e: e.after)


def _pieces(spec: str) -> list[str]:
    """Split at commas outside `{…}`."""
    pieces, depth, current = [], 0, ""
    for char in spec:
        depth += {"{": 1, "}": -1}.get(char, 0)
        if char == "," and depth == 0:
            pieces.append(current)
            current = ""
        else:
            current += char
    return [p for p in [*pieces, current] if p.strip()]


def _properties(piece: str, raw: str) -> dict[str, str]:
    properties = {}
    for pair in filter(str.strip, raw.split(";")):
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{piece.strip()!r}: properties are key=value, separated by ;")
        properties[key.strip()] = value.strip()
    return properties


@dataclass
class SimulationReport:
    """What happened to one simulated lead."""

    journey: str
    version: str
    persona: str
    lead_id: str
    started_at: datetime
    status: str
    timeline: list[TimelineEntry]
    # The lead workflow's own timeline: scores, stage changes, handovers, SLA.
    lifecycle: list[TimelineEntry]
    emails: list[EmailMessage]
    stage: str
    score: int
    handovers: int
    notes: list[str] = field(default_factory=list)

    def offset(self, moment: datetime) -> timedelta:
        return moment - self.started_at


@dataclass
class SimulationStack:
    """A time-skipping Temporal server, a worker, a database and an SMTP sink."""

    env: WorkflowEnvironment
    sessions: async_sessionmaker
    sink: SmtpSink
    settings: Settings

    @property
    def client(self) -> Client:
        return self.env.client

    @property
    def lifecycle(self) -> LeadLifecycle:
        return LeadLifecycle(
            self.client,
            self.settings.task_queue,
            self.settings.effect_timeout_seconds,
            self.settings.local_bookkeeping,
        )

    async def run(
        self,
        definition: JourneyDefinition,
        *,
        persona: Persona,
        days: float,
        events: Sequence[SimulatedEvent] = (),
        properties: dict[str, Any] | None = None,
        continue_as_new_after: int | None = None,
    ) -> SimulationReport:
        """Enroll a sample lead of `persona`, play `events`, let `days` pass; report."""
        started_at = await self.env.get_current_time()
        props, notes = self._properties_for(definition, properties or {}, started_at)
        lead_id = await self._create_lead(persona, props)
        enrollment = await start_journey(
            self.client,
            self.sessions,
            task_queue=self.settings.task_queue,
            lead_id=lead_id,
            definition=definition,
            continue_as_new_after=continue_as_new_after,
            lifecycle=self.lifecycle,
        )
        handle = self.client.get_workflow_handle(enrollment.workflow_id)
        elapsed = await self._play_events(lead_id, enrollment.workflow_id, events, notes)
        remaining = timedelta(days=days) - elapsed
        if remaining > timedelta(0):
            await self._sleep_until_done(handle, remaining)
        # Let the lead's lifecycle finish what the last events started (time stands still
        # while activities run, so a minute is plenty).
        await self.env.sleep(timedelta(minutes=1))
        description = await handle.describe()
        timeline = await handle.query(TIMELINE_QUERY, result_type=list[TimelineEntry])
        lifecycle = (await self.lifecycle.status(lead_id)).timeline
        outcome = await self._lead_outcome(lead_id)
        # Every workflow of the lead, those its triggers started included.
        async with self.sessions() as session:
            journeys = await journeys_of(session, lead_id)
        await self._end_workflows(enrollment.workflow_id, *journeys, lead_workflow_id(lead_id))
        return SimulationReport(
            journey=definition.name,
            version=definition.version,
            persona=persona.name,
            lead_id=lead_id,
            started_at=started_at,
            status=description.status.name.lower() if description.status else "unknown",
            timeline=timeline,
            lifecycle=lifecycle,
            emails=self.sink.to(f"sim-{lead_id}@simulation.example"),
            notes=notes,
            **outcome,
        )

    async def _play_events(
        self,
        lead_id: str,
        workflow_id: str,
        events: Sequence[SimulatedEvent],
        notes: list[str],
    ) -> timedelta:
        """Let time pass up to each event and record it as the API does (store it, signal
        the journeys, nudge the lifecycle); note an event the journey no longer took.
        Returns the time that passed."""
        elapsed = timedelta(0)
        for number, event in enumerate(events):
            if event.after > elapsed:
                await self.env.sleep(event.after - elapsed)
                elapsed = event.after
            result = await record_event(
                self.client,
                self.sessions,
                EventIn.model_validate(
                    {
                        "lead_id": uuid.UUID(lead_id),
                        "type": event.type,
                        "event_id": f"sim-{number}",
                        "occurred_at": await self.env.get_current_time(),
                        "properties": event.properties,
                    }
                ),
                self.lifecycle,
            )
            if workflow_id not in result.delivered_to:
                notes.append(f"{event.type} at +{event.after} arrived after the journey ended")
        return elapsed

    async def _end_workflows(self, *workflow_ids: str) -> None:
        """A simulated lead's workflows end with the simulation: on a shared time-skipping
        server their timers would otherwise hold up the next simulation's clock."""
        for workflow_id in workflow_ids:
            with contextlib.suppress(RPCError):
                await self.client.get_workflow_handle(workflow_id).terminate("simulation over")

    async def _sleep_until_done(self, handle: Any, remaining: timedelta) -> None:
        # Skip in steps, so a journey that ends early doesn't cost the whole period.
        step = timedelta(days=1)
        while remaining > timedelta(0):
            chunk = min(step, remaining)
            await self.env.sleep(chunk)
            remaining -= chunk
            if (await handle.describe()).status != WorkflowExecutionStatus.RUNNING:
                return

    @staticmethod
    def _properties_for(
        definition: JourneyDefinition, given: dict[str, Any], started_at: datetime
    ) -> tuple[dict[str, Any], list[str]]:
        props, notes = dict(given), []
        for step in definition.steps:
            if isinstance(step, Wait) and step.until_property and step.until_property not in props:
                moment = (started_at + timedelta(days=7)).replace(
                    hour=16, minute=0, second=0, microsecond=0
                )
                props[step.until_property] = moment.isoformat()
                notes.append(f"{step.until_property} not given: using {moment.isoformat()}")
        return props, notes

    async def _create_lead(self, persona: Persona, properties: dict[str, Any]) -> str:
        lead_id = str(uuid.uuid4())
        # Created at the simulated time: segments judge a lead's age ("silent for 60 days")
        # by it, and the simulated clock runs ahead of the wall clock.
        created_at = await self.env.get_current_time()
        async with self.sessions() as session:
            session.add(
                Lead(
                    id=lead_id,
                    email=f"sim-{lead_id}@simulation.example",
                    persona=persona.name,
                    properties=properties,
                    consent_status="confirmed",  # a simulated lead has opted in
                    created_at=created_at,
                    **persona.sample_lead,
                )
            )
            await session.commit()
        return lead_id

    async def _lead_outcome(self, lead_id: str) -> dict[str, Any]:
        async with self.sessions() as session:
            lead = await session.get(Lead, lead_id)
            assert lead is not None
            handovers = (
                (await session.execute(select(CrmHandover).where(CrmHandover.lead_id == lead_id)))
                .scalars()
                .all()
            )
            return {"stage": lead.lifecycle_stage, "score": lead.score, "handovers": len(handovers)}


@asynccontextmanager
async def simulation_stack(
    *,
    env: WorkflowEnvironment | None = None,
    sessions: async_sessionmaker | None = None,
    database_url: str | None = None,
    overrides: dict[str, str] | None = None,
) -> AsyncIterator[SimulationStack]:
    """Everything a simulation needs, torn down afterwards. Pass `env` or `sessions` to share."""
    from starter.worker_wiring import build_worker  # imported late: it loads every activity

    async with AsyncExitStack() as stack:
        if env is None:
            env = await start_time_skipping()
            stack.push_async_callback(env.shutdown)
            await register_search_attributes(env.client, "default", search_attributes.ALL)
        if sessions is None:
            if database_url is None:
                folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="nurture-sim-"))
                database_url = f"sqlite:///{Path(folder) / 'simulation.db'}"
            await asyncio.to_thread(upgrade_to_head, database_url)
            engine = create_engine_for(database_url)
            stack.push_async_callback(engine.dispose)
            sessions = session_factory(engine)
        controller, sink = start_sink()
        stack.callback(controller.stop)
        settings = Settings.model_validate(
            {
                "NURTURE_TASK_QUEUE": f"simulation-{uuid.uuid4().hex[:8]}",
                "SMTP_HOST": "127.0.0.1",
                "SMTP_PORT": controller.port,
                "MAIL_FROM": "Nurture Simulation <simulation@nurture.example>",
                "NURTURE_SECRET_KEY": secrets.token_urlsafe(32),
                # The Java time-skipping test server refuses a timer's cancellation that
                # a workflow task with local activities sends after the skipped-to moment
                # fired the timer, and the run hangs: regular activities here.
                "NURTURE_LOCAL_BOOKKEEPING": False,
                **(overrides or {}),
            }
        )
        worker = build_worker(env.client, settings, sessions)
        await stack.enter_async_context(worker)
        yield SimulationStack(env=env, sessions=sessions, sink=sink, settings=settings)


async def run_simulation(
    definition: JourneyDefinition,
    persona: Persona,
    *,
    days: float,
    events: list[SimulatedEvent],
    properties: dict[str, Any],
) -> SimulationReport:
    """One simulation on a fresh stack (what `nurture simulate` runs)."""
    async with simulation_stack() as stack:
        return await stack.run(
            definition, persona=persona, days=days, events=events, properties=properties
        )


def _offset(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    days, rest = divmod(seconds, 86400)
    return f"day {days:>3} {rest // 3600:02d}:{rest % 3600 // 60:02d}"


def print_report(report: SimulationReport, *, days: float) -> None:
    """The timeline as a table, then a summary."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(
        title=f"{report.journey} ({report.version}) · persona {report.persona} · {days:g} days"
    )
    table.add_column("when", no_wrap=True)
    table.add_column("step")
    table.add_column("what")
    subjects = iter(m["Subject"] for m in report.emails)
    merged = [(e, e.step or "") for e in report.timeline] + [
        (e, "(lifecycle)") for e in report.lifecycle
    ]
    for entry, step in sorted(merged, key=lambda pair: pair[0].at):
        what = entry.what
        if what.startswith("email sent"):
            what = f"{what} — “{next(subjects, '?')}”"
        table.add_row(_offset(report.offset(entry.at)), step, what)
    console.print(table)
    for note in report.notes:
        console.print(f"note: {note}")
    console.print(
        f"journey {report.status}; {len(report.emails)} email(s) delivered; "
        f"stage {report.stage}; score {report.score}; {report.handovers} handover(s)"
    )
