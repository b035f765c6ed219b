"""Bulk enrollment jobs: validate every row up front, stage the valid ones, enroll them
in the background (`EnrollmentJobWorkflow`), report progress and per-row errors."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from db.models import EnrollmentJob, EnrollmentJobChunk, EnrollmentJobRow
from journeys.consent import SuppressionReason
from journeys.dsl import JourneyDefinition
from starter.services.bulk_rows import MAX_ROWS, ParsedRows, RowError
from starter.services.consent import ConsentIn
from starter.services.errors import Problem, Refusal
from starter.services.input_model import InputModel
from workflows.enrollment_job import (
    ENROLLMENT_JOB_WORKFLOW,
    EnrollmentJobInput,
    enrollment_job_workflow_id,
)

CHUNK_ROWS = 100


class EnrollmentJobRequest(InputModel):
    """`POST /v1/enrollment-jobs`: up to 10,000 leads into one journey (a CSV upload takes
    100,000). Each element of `leads` is validated on its own: bad ones are reported, the
    rest enrolled."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "journey": "whitepaper-nurture",
                "consent": {"source": "trade-show-import", "confirmed": True},
                "leads": [
                    {"email": "ada@example.com", "first_name": "Ada", "external_id": "crm-1"},
                    {"email": "grace@example.com", "title": "CTO", "company_size": 900},
                ],
            }
        },
    )

    journey: str = Field(min_length=1, max_length=100)
    consent: ConsentIn | None = None
    leads: list[Any] = Field(
        min_length=1,
        max_length=MAX_ROWS,
        description="Leads as in `POST /v1/enrollments` (`email`, `external_id`, …)",
    )


class SuppressedRow(BaseModel):
    """A row enrolled without any email: its address is suppressed."""

    line: int
    reason: SuppressionReason


class EnrollmentJobView(BaseModel):
    """A bulk enrollment's progress; poll until `status` is `done`."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "job_id": "6c0f3d7e-9a54-4c1e-8d0b-0e3b1c2f4a11",
                "journey": "whitepaper-nurture",
                "status": "running",
                "total_rows": 3,
                "valid_rows": 2,
                "phase": "starting",
                "stored_rows": 2,
                "processed_rows": 1,
                "enrolled": 1,
                "already_enrolled": 0,
                "failed_rows": 1,
                "errors": [{"line": 3, "field": "email", "reason": "value is not a valid email"}],
                "suppressed_rows": 1,
                "suppressed": [{"line": 2, "reason": "unsubscribed"}],
            }
        }
    )

    job_id: str
    journey: str
    source: Literal["json", "csv"]
    status: Literal["running", "done"]
    total_rows: int
    valid_rows: int
    phase: Literal["storing", "starting", "done"] = Field(
        description="`storing`: the new leads are being written in bulk; `starting`: "
        "journeys are being started (and the other rows written one by one) chunk by chunk"
    )
    stored_rows: int = Field(description="Valid rows whose lead is written so far")
    processed_rows: int = Field(
        description="Rows done: journey started (or already running), or refused"
    )
    enrolled: int
    already_enrolled: int
    failed_rows: int
    errors: list[RowError]
    suppressed_rows: int = Field(
        description="Rows enrolled but mailed nothing: the address unsubscribed, bounced or "
        "complained, whatever the job's consent says"
    )
    suppressed: list[SuppressedRow]
    created_at: datetime
    finished_at: datetime | None


class JobNotFound(Problem):
    def __init__(self, job_id: str) -> None:
        super().__init__(
            Refusal.NOT_FOUND, ("path", "job_id"), f"no enrollment job {job_id!r}", "job_not_found"
        )


def job_id_for(idempotency_key: str | None, caller: str) -> str:
    """A new job id, or the same id for a repeated `Idempotency-Key` from the same caller."""
    if idempotency_key is None:
        return str(uuid.uuid4())
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"nurture:enrollment-job:{caller}:{idempotency_key}"))


async def create_job(
    client: Client,
    sessions: async_sessionmaker,
    *,
    task_queue: str,
    job_id: str,
    definition: JourneyDefinition,
    parsed: ParsedRows,
    source: Literal["json", "csv"],
    consent: ConsentIn | None,
    created_by: str,
) -> EnrollmentJobView:
    """Stage the valid rows and start enrolling them; a repeated job id starts nothing new."""
    async with sessions() as session:
        existing = await session.get(EnrollmentJob, job_id)
        if existing is None:
            chunks = await _stage_job(
                session,
                job_id=job_id,
                definition=definition,
                parsed=parsed,
                source=source,
                consent=consent,
                created_by=created_by,
            )
            await session.commit()
        else:
            chunks = existing.chunks
    try:
        # Started after the commit: a crash in between is repaired by repeating the request
        # with the same Idempotency-Key.
        await client.start_workflow(
            ENROLLMENT_JOB_WORKFLOW,
            EnrollmentJobInput(job_id=job_id, chunks=chunks),
            id=enrollment_job_workflow_id(job_id),
            task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
    except WorkflowAlreadyStartedError:
        pass
    return await read_job(sessions, job_id)


async def _stage_job(
    session: AsyncSession,
    *,
    job_id: str,
    definition: JourneyDefinition,
    parsed: ParsedRows,
    source: Literal["json", "csv"],
    consent: ConsentIn | None,
    created_by: str,
) -> int:
    """Add the job (with the rows that failed validation) and its valid rows, in chunks of
    `CHUNK_ROWS`, for the caller to commit; returns the number of chunks."""
    chunks = -(-len(parsed.leads) // CHUNK_ROWS)
    session.add(
        EnrollmentJob(
            id=job_id,
            journey=definition.name,
            journey_version=definition.version,
            source=source,
            status="running",
            total_rows=parsed.total,
            valid_rows=len(parsed.leads),
            chunks=chunks,
            errors=[error.model_dump() for error in parsed.errors],
            consent=consent.model_dump(mode="json") if consent else None,
            created_by=created_by,
        )
    )
    await session.flush()
    if parsed.leads:
        await session.execute(
            insert(EnrollmentJobRow),
            [
                {
                    "job_id": job_id,
                    "line": line,
                    "chunk": index // CHUNK_ROWS,
                    "lead": lead.model_dump(mode="json", exclude_none=True),
                }
                for index, (line, lead) in enumerate(parsed.leads)
            ],
        )
    return chunks


async def read_job(sessions: async_sessionmaker, job_id: str) -> EnrollmentJobView:
    """A job's progress: rows processed so far and every row's error."""
    async with sessions() as session:
        job = await session.get(EnrollmentJob, job_id)
        if job is None:
            raise JobNotFound(job_id)
        totals = (
            await session.execute(
                select(
                    func.coalesce(func.sum(EnrollmentJobChunk.rows), 0),
                    func.coalesce(func.sum(EnrollmentJobChunk.enrolled), 0),
                    func.coalesce(func.sum(EnrollmentJobChunk.already_enrolled), 0),
                    func.coalesce(func.sum(EnrollmentJobChunk.stored), 0),
                    func.count(),
                ).where(EnrollmentJobChunk.job_id == job_id)
            )
        ).one()
        chunk_notes = (
            await session.execute(
                select(EnrollmentJobChunk.errors, EnrollmentJobChunk.suppressed).where(
                    EnrollmentJobChunk.job_id == job_id
                )
            )
        ).all()
        errors = [RowError.model_validate(e) for e in job.errors]
        errors += [RowError.model_validate(e) for batch, _ in chunk_notes for e in batch]
        suppressed = [SuppressedRow.model_validate(s) for _, batch in chunk_notes for s in batch]
    errors.sort(key=lambda error: error.line)
    suppressed.sort(key=lambda row: row.line)
    processed, enrolled, already, stored_one_by_one, chunks_done = (int(v) for v in totals)
    phase: Literal["storing", "starting", "done"]
    if job.status == "done":
        phase = "done"
    elif job.starting_at is not None or chunks_done:
        phase = "starting"
    else:
        phase = "storing"
    return EnrollmentJobView(
        job_id=job.id,
        journey=job.journey,
        source=job.source,
        status=job.status,
        total_rows=job.total_rows,
        valid_rows=job.valid_rows,
        phase=phase,
        stored_rows=job.stored_rows + stored_one_by_one,
        processed_rows=processed + (job.total_rows - job.valid_rows),
        enrolled=enrolled,
        already_enrolled=already,
        failed_rows=len({error.line for error in errors}),
        errors=errors,
        suppressed_rows=len(suppressed),
        suppressed=suppressed,
        created_at=job.created_at,
        finished_at=job.finished_at,
    )
