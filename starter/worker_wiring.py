"""The worker's wiring: which workflows and activities run on the task queue, in which
sandbox, and how a worker process runs (`run`). `worker.py` is the entry point; the CLI,
the simulator and the tests build workers from here."""

from __future__ import annotations

import asyncio
import compileall
import logging
import signal
import sys
from datetime import timedelta
from pathlib import Path

from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

import workflows
from activities.broadcasts import BroadcastActivities
from activities.crm import CrmActivities
from activities.email import EmailActivities
from activities.enrollment_jobs import EnrollmentJobActivities
from activities.inbound import InboundActivities
from activities.leads import LeadActivities
from activities.lifecycle import LifecycleActivities
from activities.mql import MqlActivities
from activities.scoring import ScoringActivities
from activities.segments import SegmentActivities
from db.engine import create_engine_for, session_factory
from db.migrate import upgrade_to_head
from db.suppression_list import SuppressionList
from starter.dev.provisioning.temporal import register_search_attributes, temporal_address
from starter.services.lead_workflow import LeadLifecycle
from starter.services.schedules import sync_schedules
from starter.settings import Settings, SettingsError, load_settings
from starter.temporal_client import connect
from workflows import search_attributes
from workflows.broadcast import BroadcastWorkflow
from workflows.enrollment_job import EnrollmentJobWorkflow
from workflows.inbound_message import InboundMessageWorkflow
from workflows.journey import JourneyWorkflow
from workflows.lead import LeadWorkflow
from workflows.scheduled_enrollment import ScheduledEnrollmentWorkflow
from workflows.segment_backfill import SegmentBackfillWorkflow

log = logging.getLogger("nurture.worker")

# Pure-data modules the workflow imports: shared with the sandbox instead of re-imported
# for every workflow run (they hold no state and do no I/O).
_PASSTHROUGH = (
    "pydantic",
    "pydantic_core",
    "annotated_types",
    "journeys",
    "activities",
    "workflows.contracts",
    "workflows.search_attributes",
    "workflows.effects",
)


def compile_workflow_modules() -> None:
    """Write the workflow modules' bytecode once.

    The sandbox re-imports each workflow module for every run it starts or replays; with
    PYTHONDONTWRITEBYTECODE (common in containers) that meant compiling the source every
    time, a fifth of the worker's CPU under load (py-spy, docs/performance.md).
    """
    folder = Path(workflows.__file__).resolve().parent
    if not compileall.compile_dir(folder, quiet=2, workers=1):
        log.warning("could not write bytecode for %s; workflow starts will compile it", folder)


def workflow_runner() -> SandboxedWorkflowRunner:
    """The sandbox every worker (and the replay tests) runs workflows in."""
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*_PASSTHROUGH)
    )


def build_worker(
    client: Client,
    settings: Settings,
    sessions: async_sessionmaker,
    *,
    task_queue: str | None = None,
) -> Worker:
    """A worker for every Nurture workflow and activity, wired to `settings` and `sessions`."""
    queue = task_queue or settings.task_queue
    lifecycle = LeadLifecycle(
        client, queue, settings.effect_timeout_seconds, settings.local_bookkeeping
    )
    email = EmailActivities(settings, sessions)
    leads = LeadActivities(sessions, lifecycle)
    crm = CrmActivities(settings, sessions, lifecycle)
    scoring = ScoringActivities(sessions)
    stages = LifecycleActivities(lifecycle, sessions)
    mql = MqlActivities(stages, crm)
    inbound = InboundActivities(
        settings.require_secret_key(), sessions, lifecycle, settings=settings, notices=email
    )
    segments = SegmentActivities(lifecycle, sessions, settings.default_timezone)
    broadcasts = BroadcastActivities(settings, sessions, email)
    jobs = EnrollmentJobActivities(
        lifecycle,
        sessions,
        settings.consent_text_version,
        SuppressionList(settings.require_secret_key()),
    )
    return Worker(
        client,
        task_queue=queue,
        workflows=[
            JourneyWorkflow,
            LeadWorkflow,
            EnrollmentJobWorkflow,
            SegmentBackfillWorkflow,
            ScheduledEnrollmentWorkflow,
            InboundMessageWorkflow,
            BroadcastWorkflow,
        ],
        activities=[
            email.send_email,
            email.notify_owner,
            email.send_confirmation,
            email.expire_consent,
            leads.choose_branch,
            leads.check_conditions,
            leads.resolve_wait,
            leads.update_lead,
            crm.hand_over,
            crm.hand_over_lead,
            crm.hand_over_account,
            mql.become_mql,
            scoring.score_lead,
            stages.change_stage,
            stages.journey_finished,
            inbound.process_inbound,
            stages.enroll_in_journey,
            stages.request_handover,
            jobs.store_job_leads,
            jobs.enroll_job_chunk,
            jobs.finish_enrollment_job,
            segments.segments_and_triggers,
            segments.backfill_segment_batch,
            segments.enroll_segment_page,
            broadcasts.snapshot_audience,
            broadcasts.send_batch,
            broadcasts.pick_winner,
            broadcasts.record_status,
        ],
        workflow_runner=workflow_runner(),
        graceful_shutdown_timeout=timedelta(seconds=20),
        max_cached_workflows=settings.worker_max_cached_workflows,
        max_concurrent_activities=settings.worker_max_concurrent_activities,
        # Scoring and segments run as local activities: bounded like the others, so they
        # can't outnumber the database pool.
        max_concurrent_local_activities=settings.worker_max_concurrent_activities,
        max_concurrent_workflow_tasks=settings.worker_max_concurrent_workflow_tasks,
    )


async def run(settings: Settings) -> None:
    """Run the worker until a termination signal arrives."""
    await asyncio.to_thread(upgrade_to_head, settings.effective_database_url)
    compile_workflow_modules()
    engine = create_engine_for(
        settings.effective_database_url, pool_size=settings.database_pool_size
    )
    try:
        async with temporal_address(
            settings.temporal_address,
            namespace=settings.temporal_namespace,
            data_dir=settings.data_dir,
        ) as address:
            client = await connect(address, settings.temporal_namespace)
            await register_search_attributes(
                client, settings.temporal_namespace, search_attributes.ALL
            )
            worker = build_worker(client, settings, session_factory(engine))
            await sync_schedules(client, settings.task_queue)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, stop.set)
            log.info(
                "worker on %s, namespace %s, task queue %s",
                address,
                settings.temporal_namespace,
                settings.task_queue,
            )
            async with worker:
                await stop.wait()
                log.info("stopping: finishing in-flight tasks…")
            log.info("worker stopped")
    finally:
        await engine.dispose()


def main() -> None:
    """Run a worker configured from the environment (`python worker.py`, `nurture worker`)."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"nurture worker: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    asyncio.run(run(settings))
