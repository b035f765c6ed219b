"""`EnrollmentJobWorkflow`: a bulk enrollment, enrolled chunk by chunk in the background.

The rows never enter history: the input is the job id and the number of chunks; each
activity reads its chunk from the staging table. A worker crash resumes at the chunk it was
on, and a retried chunk is harmless (enrolling is idempotent on email and external id).
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
        EnrollJobChunkRequest,
        FinishEnrollmentJobRequest,
    )
    from workflows.activity_calls import call

ENROLLMENT_JOB_WORKFLOW = "EnrollmentJobWorkflow"


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
