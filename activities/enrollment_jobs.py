"""Bulk enrollment activities: store a job's new leads in bulk; enroll one staged chunk of
a job (start the journeys of stored leads, write and enroll the other rows one by one);
mark a job done."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import cast

from sqlalchemy import Table, bindparam, delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from activities.contracts import (
    ENROLL_JOB_CHUNK,
    FINISH_ENROLLMENT_JOB,
    STORE_JOB_LEADS,
    EnrollJobChunkRequest,
    EnrollJobChunkResult,
    FinishEnrollmentJobRequest,
    StoreJobLeadsRequest,
    StoreJobLeadsResult,
)
from db.bulk import on_postgresql
from db.models import EnrollmentJob, EnrollmentJobChunk, EnrollmentJobRow
from db.suppression_list import SuppressionList
from db.writes import insert_once
from journeys.registry import get_journey
from starter.services.consent import ConsentIn
from starter.services.enrollment import LeadIn, enroll, start_journey
from starter.services.errors import Problem
from starter.services.lead_batches import StoredLead, store_new_leads
from starter.services.lead_workflow import LeadLifecycle
from workflows.contracts import LeadNudge

log = logging.getLogger(__name__)

# Rows of one chunk enrolled at once: bounded so a chunk doesn't exhaust the DB pool.
ROWS_IN_FLIGHT = 8
# Journeys of stored leads started at once by one chunk: each is a Temporal start, one
# small transaction and a signal-with-start, so more of them fit the pool.
STARTS_IN_FLIGHT = 16


class EnrollmentJobActivities:
    """Activities of `EnrollmentJobWorkflow`."""

    def __init__(
        self,
        lifecycle: LeadLifecycle,
        sessions: async_sessionmaker,
        consent_text_version: str,
        suppressions: SuppressionList,
    ) -> None:
        self._lifecycle = lifecycle
        self._sessions = sessions
        self._text_version = consent_text_version
        self._suppressions = suppressions

    @activity.defn(name=STORE_JOB_LEADS.name)
    async def store_job_leads(self, request: StoreJobLeadsRequest) -> StoreJobLeadsResult:
        """Write the chunks' plain new leads in bulk (`lead_batches`), mark their staged
        rows with the lead, and count them on the job, in one transaction; a retry finds
        them marked and skips them."""
        async with self._sessions() as session:
            job = await session.get(EnrollmentJob, request.job_id)
            if job is None:
                raise ValueError(f"no enrollment job {request.job_id}")
            rows = (
                await session.execute(
                    select(EnrollmentJobRow.line, EnrollmentJobRow.lead).where(
                        EnrollmentJobRow.job_id == request.job_id,
                        EnrollmentJobRow.chunk.between(request.first, request.last),
                        EnrollmentJobRow.lead_id.is_(None),
                    )
                )
            ).all()
            consent = ConsentIn.model_validate(job.consent) if job.consent else None
            # Validated (and normalised) when the job was created: built without validating
            # again, which was a quarter of this activity's time.
            staged = [(line, LeadIn.model_construct(**lead)) for line, lead in rows]
            stored = await store_new_leads(
                session, staged, consent, self._text_version, self._suppressions
            )
            if stored:
                await _mark_stored(session, request.job_id, stored)
                # Store activities run side by side: count atomically, locking the job's
                # row only for the rest of this transaction.
                await session.execute(
                    update(EnrollmentJob)
                    .where(EnrollmentJob.id == request.job_id)
                    .values(stored_rows=EnrollmentJob.stored_rows + len(stored))
                )
            await session.commit()
        return StoreJobLeadsResult(rows=len(staged), stored=len(stored))

    @activity.defn(name=ENROLL_JOB_CHUNK.name)
    async def enroll_job_chunk(self, request: EnrollJobChunkRequest) -> EnrollJobChunkResult:
        """Enroll the chunk's rows, then record its result and delete its staged rows in one
        transaction. A chunk already recorded is not enrolled again."""
        async with self._sessions() as session:
            done = await session.get(EnrollmentJobChunk, (request.job_id, request.chunk))
            if done is not None:
                return _result(done)
            # Chunks are enrolled after the store phase: the job's view says "starting".
            await session.execute(
                update(EnrollmentJob)
                .where(EnrollmentJob.id == request.job_id, EnrollmentJob.starting_at.is_(None))
                .values(starting_at=datetime.now(UTC))
            )
            await session.commit()
            job = await session.get(EnrollmentJob, request.job_id)
            if job is None:
                raise ValueError(f"no enrollment job {request.job_id}")
            journey, consent = job.journey, job.consent
            rows = list(
                (
                    await session.execute(
                        select(EnrollmentJobRow)
                        .where(
                            EnrollmentJobRow.job_id == request.job_id,
                            EnrollmentJobRow.chunk == request.chunk,
                        )
                        .order_by(EnrollmentJobRow.line)
                    )
                ).scalars()
            )
            staged = [
                (row.line, LeadIn.model_validate(row.lead)) for row in rows if row.lead_id is None
            ]
            stored = [(row.line, row.lead_id, row.double_opt_in) for row in rows if row.lead_id]
        definition = get_journey(journey)
        consent_in = ConsentIn.model_validate(consent) if consent else None
        gate = asyncio.Semaphore(ROWS_IN_FLIGHT)
        starts = asyncio.Semaphore(STARTS_IN_FLIGHT)
        enrolled = already = 0
        errors: list[dict[str, object]] = []
        suppressed: list[dict[str, object]] = []

        async def start(line: int, lead_id: str, double_opt_in: bool) -> None:
            # Written by the store phase: only the journey (and the opt-in request) is left.
            nonlocal enrolled, already
            async with starts:
                result = await start_journey(
                    self._lifecycle.client,
                    self._sessions,
                    task_queue=self._lifecycle.task_queue,
                    lead_id=lead_id,
                    definition=definition,
                    lifecycle=self._lifecycle,
                )
                if double_opt_in:
                    nudge = LeadNudge(cause="opt-in requested", consent_requested=True)
                    await self._lifecycle.nudge(lead_id, nudge)
                if result.status == "enrolled":
                    enrolled += 1
                else:
                    already += 1
            activity.heartbeat(line)

        async def one(line: int, lead: LeadIn) -> None:
            nonlocal enrolled, already
            async with gate:
                try:
                    result = await enroll(
                        self._lifecycle.client,
                        self._sessions,
                        task_queue=self._lifecycle.task_queue,
                        lead_in=lead,
                        definition=definition,
                        suppressions=self._suppressions,
                        lifecycle=self._lifecycle,
                        consent=consent_in,
                        consent_text_version=self._text_version,
                    )
                except Problem as problem:  # e.g. an email owned by another external id
                    field = problem.loc[-1] if problem.loc else None
                    errors.append({"line": line, "field": field, "reason": problem.message})
                    return
                if result.suppressed is not None:
                    suppressed.append({"line": line, "reason": result.suppressed.value})
                if result.status == "enrolled":
                    enrolled += 1
                else:
                    already += 1
            activity.heartbeat(line)

        await asyncio.gather(
            *(one(line, lead) for line, lead in staged),
            *(start(line, lead_id, doi) for line, lead_id, doi in stored),
        )
        async with self._sessions() as session:
            await session.execute(
                delete(EnrollmentJobRow).where(
                    EnrollmentJobRow.job_id == request.job_id,
                    EnrollmentJobRow.chunk == request.chunk,
                )
            )
            chunk = EnrollmentJobChunk(
                job_id=request.job_id,
                chunk=request.chunk,
                rows=len(staged) + len(stored),
                stored=len(staged) - len(errors),
                enrolled=enrolled,
                already_enrolled=already,
                errors=sorted(errors, key=lambda e: int(str(e["line"]))),
                suppressed=sorted(suppressed, key=lambda e: int(str(e["line"]))),
            )
            if not await insert_once(session, chunk):
                # A concurrent attempt recorded it first; its rows are gone with it.
                done = await session.get(EnrollmentJobChunk, (request.job_id, request.chunk))
                assert done is not None
                return _result(done)
        return EnrollJobChunkResult(
            rows=len(staged) + len(stored),
            enrolled=enrolled,
            already_enrolled=already,
            failed=len(errors),
        )

    @activity.defn(name=FINISH_ENROLLMENT_JOB.name)
    async def finish_enrollment_job(self, request: FinishEnrollmentJobRequest) -> None:
        """Mark the job done (once)."""
        async with self._sessions() as session:
            job = await session.get(EnrollmentJob, request.job_id)
            if job is not None and job.finished_at is None:
                job.status = "done"
                job.finished_at = datetime.now(UTC)
                await session.commit()


def _result(chunk: EnrollmentJobChunk) -> EnrollJobChunkResult:
    return EnrollJobChunkResult(
        rows=chunk.rows,
        enrolled=chunk.enrolled,
        already_enrolled=chunk.already_enrolled,
        failed=len(chunk.errors),
    )


async def _mark_stored(session: AsyncSession, job_id: str, stored: dict[int, StoredLead]) -> None:
    """Mark each staged row with the lead written for it: on PostgreSQL one statement for
    the batch (UPDATE … FROM unnest of three arrays); elsewhere (SQLite, the demo) one
    per row."""
    table = cast(Table, EnrollmentJobRow.__table__)
    rows = [(line, lead.lead_id, lead.double_opt_in) for line, lead in stored.items()]
    if on_postgresql(session):
        # Three array parameters, whatever the batch's size: one short statement.
        lines, leads, opt_ins = (list(column) for column in zip(*rows, strict=True))
        await session.execute(
            text(
                "UPDATE enrollment_job_rows AS r SET lead_id = m.lead_id, "
                "double_opt_in = m.double_opt_in "
                "FROM unnest(CAST(:lines AS integer[]), CAST(:leads AS varchar[]), "
                "CAST(:opt_ins AS boolean[])) AS m(line, lead_id, double_opt_in) "
                "WHERE r.job_id = :job AND r.line = m.line"
            ),
            {"lines": lines, "leads": leads, "opt_ins": opt_ins, "job": job_id},
        )
        return
    await session.execute(
        update(table)
        .where(table.c.job_id == job_id, table.c.line == bindparam("row_line"))
        .values(lead_id=bindparam("row_lead"), double_opt_in=bindparam("row_doi")),
        [{"row_line": line, "row_lead": lead, "row_doi": doi} for line, lead, doi in rows],
    )
