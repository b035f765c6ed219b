"""`ScheduledEnrollmentWorkflow`: what a scheduled trigger's Temporal Schedule starts —
enroll the members of a segment into a journey, a page at a time. Ids and counts only.

Each member's enrollment is recorded as a trigger firing keyed by this run (the schedule
gives each run its own workflow id), so a retried page enrolls nobody twice."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, Field
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.contracts import ENROLL_SEGMENT_PAGE, EnrollSegmentPageRequest
    from workflows.activity_calls import call

SCHEDULED_ENROLLMENT_WORKFLOW = "ScheduledEnrollmentWorkflow"


def trigger_schedule_id(task_queue: str, journey: str, segment: str) -> str:
    """The Temporal Schedule of a journey's scheduled trigger on `segment`, for the
    deployment working `task_queue` (another deployment on the namespace has its own)."""
    return f"nurture-trigger:{task_queue}:{journey}:{segment}"


class ScheduledEnrollmentInput(BaseModel):
    journey: str
    segment: str
    page_size: int = Field(default=200, ge=1, le=2000)


class ScheduledEnrollmentResult(BaseModel):
    members: int = 0
    enrolled: int = 0


@workflow.defn(name=SCHEDULED_ENROLLMENT_WORKFLOW)
class ScheduledEnrollmentWorkflow:
    """Every member of the segment, a page at a time, into the journey."""

    @workflow.run
    async def run(self, input: ScheduledEnrollmentInput) -> ScheduledEnrollmentResult:
        result = ScheduledEnrollmentResult()
        after = ""
        occurrence = workflow.info().workflow_id
        while True:
            page = await call(
                ENROLL_SEGMENT_PAGE,
                EnrollSegmentPageRequest(
                    journey=input.journey,
                    segment=input.segment,
                    occurrence=occurrence,
                    after=after,
                    limit=input.page_size,
                ),
                start_to_close_timeout=timedelta(minutes=10),
                heartbeat_timeout=timedelta(minutes=1),
            )
            result.members += page.members
            result.enrolled += page.enrolled
            if page.last is None or page.members < input.page_size:
                return result
            after = page.last
