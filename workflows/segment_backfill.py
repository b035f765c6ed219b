"""`SegmentBackfillWorkflow`: evaluate one segment over every lead, in batches by lead id,
after a segment is added or changed. Progress is a query; the answer is the segment's size.

Leads only: ids and counts enter history. A crash resumes at the batch it was on (a batch
is idempotent: memberships are brought to the verdict, not toggled)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, Field
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.contracts import BACKFILL_SEGMENT_BATCH, BackfillBatchRequest
    from workflows.activity_calls import call

SEGMENT_BACKFILL_WORKFLOW = "SegmentBackfillWorkflow"
BACKFILL_PROGRESS_QUERY = "backfill_progress"
# Batches per run before continuing as new (history stays small over millions of leads).
BATCHES_PER_RUN = 200


def segment_backfill_workflow_id(segment: str, version: str) -> str:
    """One backfill per segment version: starting it again while it runs starts nothing."""
    return f"segment-backfill:{segment}:{version}"


class BackfillProgress(BaseModel):
    """Where a backfill stands; `done` with `members` as the segment's size."""

    segment: str
    evaluated: int = 0
    members: int = 0
    entered: int = 0
    left: int = 0
    after: str = ""
    done: bool = False


class BackfillInput(BaseModel):
    segment: str
    batch_size: int = Field(default=500, ge=1, le=5000)
    progress: BackfillProgress | None = None


@workflow.defn(name=SEGMENT_BACKFILL_WORKFLOW)
class SegmentBackfillWorkflow:
    """Every lead, a batch at a time, then the segment's size."""

    def __init__(self) -> None:
        self._progress: BackfillProgress | None = None

    @workflow.run
    async def run(self, input: BackfillInput) -> BackfillProgress:
        progress = input.progress or BackfillProgress(segment=input.segment)
        self._progress = progress
        for _ in range(BATCHES_PER_RUN):
            batch = await call(
                BACKFILL_SEGMENT_BATCH,
                BackfillBatchRequest(
                    segment=input.segment,
                    after=progress.after,
                    limit=input.batch_size,
                    now=workflow.now(),
                ),
                start_to_close_timeout=timedelta(minutes=5),
            )
            progress.evaluated += batch.evaluated
            progress.members += batch.members
            progress.entered += batch.entered
            progress.left += batch.left
            if batch.last is None or batch.evaluated < input.batch_size:
                progress.done = True
                return progress
            progress.after = batch.last
        workflow.continue_as_new(input.model_copy(update={"progress": progress}))

    @workflow.query(name=BACKFILL_PROGRESS_QUERY)
    def progress(self) -> BackfillProgress | None:
        """How far the backfill has come."""
        return self._progress
