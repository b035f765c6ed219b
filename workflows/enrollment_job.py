"""`EnrollmentJobWorkflow`: a bulk enrollment, in two phases in the background.

First the store phase writes the job's new leads in bulk, `STORE_CHUNKS` chunks per
activity (a 100,000-row file in seconds); then the chunks are enrolled, a few at a time:
journeys started for the stored leads, the other rows (updates of known leads, duplicates,
suppressed addresses) written and enrolled one by one.

The rows never enter history: the input is the job id and the number of chunks; each
activity reads its chunks from the staging table. A worker crash resumes at the activity
it was on, and a retried one is harmless (the store phase marks what it wrote; enrolling is
idempotent on email and external id).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from pydantic import BaseModel, Field
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.contracts import (
        ENROLL_JOB_CHUNK,
        FINISH_ENROLLMENT_JOB,
        STORE_JOB_LEADS,
        EnrollJobChunkRequest,
        FinishEnrollmentJobRequest,
        StoreJobLeadsRequest,
    )
    from workflows.activity_calls import call

ENROLLMENT_JOB_WORKFLOW = "EnrollmentJobWorkflow"
# Issue 18: the new leads stored in bulk before any chunk is enrolled.
STORE_PHASE = "bulk-store-phase"
# Chunks (of 100 rows) per store activity: 2,000 rows in a few statements; 50 activities
# for the largest job.
STORE_CHUNKS = 20


def enrollment_job_workflow_id(job_id: str) -> str:
    return f"enrollment-job:{job_id}"


class EnrollmentJobInput(BaseModel):
    job_id: str
    chunks: int = Field(ge=0)
    parallel_chunks: int = Field(default=2, ge=1, le=16)


@workflow.defn(name=ENROLLMENT_JOB_WORKFLOW)
class EnrollmentJobWorkflow:
    """Enroll every chunk of a job, a few at a time, then mark the job done."""

    @workflow.run
    async def run(self, job: EnrollmentJobInput) -> int:
        if workflow.patched(STORE_PHASE):
            for first in range(0, job.chunks, STORE_CHUNKS * job.parallel_chunks):
                await asyncio.gather(
                    *(
                        call(
                            STORE_JOB_LEADS,
                            StoreJobLeadsRequest(
                                job_id=job.job_id,
                                first=start,
                                last=min(start + STORE_CHUNKS, job.chunks) - 1,
                            ),
                            start_to_close_timeout=timedelta(minutes=1),
                        )
                        for start in range(
                            first,
                            min(first + STORE_CHUNKS * job.parallel_chunks, job.chunks),
                            STORE_CHUNKS,
                        )
                    )
                )
        enrolled = 0
        for start in range(0, job.chunks, job.parallel_chunks):
            batch = range(start, min(start + job.parallel_chunks, job.chunks))
            results = await asyncio.gather(
                *(
                    call(
                        ENROLL_JOB_CHUNK,
                        EnrollJobChunkRequest(job_id=job.job_id, chunk=chunk),
                        start_to_close_timeout=timedelta(minutes=10),
                        heartbeat_timeout=timedelta(minutes=1),
                    )
                    for chunk in batch
                )
            )
            enrolled += sum(result.enrolled for result in results)
        await call(
            FINISH_ENROLLMENT_JOB,
            FinishEnrollmentJobRequest(job_id=job.job_id),
            start_to_close_timeout=timedelta(minutes=1),
        )
        return enrolled
