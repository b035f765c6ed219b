"""Talking to a lead's lifecycle workflow from outside: nudges (signal-with-start), sales
feedback (a validated update) and its status. Used by the API, the CLI and activities."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from temporalio.client import (
    Client,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from workflows.contracts import (
    LEAD_NUDGE_SIGNAL,
    LEAD_STATUS_QUERY,
    LEAD_WORKFLOW_NAME,
    SALES_FEEDBACK_SIGNAL,
    SALES_FEEDBACK_UPDATE,
    UPGRADE_SIGNAL,
    FeedbackResult,
    LeadInput,
    LeadNudge,
    LeadStatus,
    SalesFeedback,
    lead_workflow_id,
)

# How long the API waits for a lead workflow to answer an update: it answers in
# milliseconds when a worker is up; past this, no worker has picked it up (all down).
UPDATE_ANSWER_TIMEOUT = timedelta(seconds=5)


class FeedbackUnanswered(Exception):
    """No worker answered the update in time; it may still be applied when one does."""


class FeedbackConflict(Exception):
    """Sales feedback the lead's stage does not allow; nothing was written."""

    def __init__(self, message: str, current_stage: str | None) -> None:
        super().__init__(message)
        self.message, self.current_stage = message, current_stage


@dataclass(frozen=True)
class LeadLifecycle:
    """A handle on lead workflows: where they run and how long one effect may take."""

    client: Client
    task_queue: str
    effect_timeout_seconds: int = 60
    local_bookkeeping: bool = True  # NURTURE_LOCAL_BOOKKEEPING, for the runs it starts

    async def nudge(self, lead_id: str, nudge: LeadNudge) -> None:
        """Tell the lead's lifecycle something changed, starting it if it isn't running."""
        await self.client.start_workflow(
            LEAD_WORKFLOW_NAME,
            LeadInput(
                lead_id=lead_id,
                effect_timeout_seconds=self.effect_timeout_seconds,
                local_bookkeeping=self.local_bookkeeping,
            ),
            id=lead_workflow_id(lead_id),
            task_queue=self.task_queue,
            start_signal=LEAD_NUDGE_SIGNAL,
            start_signal_args=[nudge],
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        )

    async def feedback(
        self, lead_id: str, feedback: SalesFeedback, *, request_id: str | None = None
    ) -> FeedbackResult:
        """Apply sales feedback as an update; `FeedbackConflict` if the stage doesn't allow it.

        `request_id` (the caller's idempotency key) becomes the update id, so a retried
        request is applied once.
        """
        handle = self.client.get_workflow_handle(lead_workflow_id(lead_id))
        try:
            return await handle.execute_update(
                SALES_FEEDBACK_UPDATE,
                feedback,
                id=request_id or str(uuid.uuid4()),
                result_type=FeedbackResult,
                rpc_timeout=UPDATE_ANSWER_TIMEOUT,
            )
        except WorkflowUpdateRPCTimeoutOrCancelledError:
            raise FeedbackUnanswered() from None
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause
            if isinstance(cause, ApplicationError) and cause.type == "FeedbackRefused":
                details = cause.details[0] if cause.details else {}
                stage = details.get("current_stage") if isinstance(details, dict) else None
                raise FeedbackConflict(cause.message, stage) from None
            raise

    async def feedback_later(self, lead_id: str, feedback: SalesFeedback) -> None:
        """The same feedback as a signal (fire-and-forget): refused feedback is only noted."""
        handle = self.client.get_workflow_handle(lead_workflow_id(lead_id))
        await handle.signal(SALES_FEEDBACK_SIGNAL, feedback)

    async def status(self, lead_id: str) -> LeadStatus:
        """The lead workflow's view: stage, score, owner, SLA phase, timeline."""
        handle = self.client.get_workflow_handle(lead_workflow_id(lead_id))
        return await handle.query(LEAD_STATUS_QUERY, result_type=LeadStatus)


async def upgrade_lead_workflows(client: Client) -> int:
    """Ask every running lead workflow to continue as new (`UPGRADE_SIGNAL`), so that each
    runs the deployed code from its next step; how many were asked."""
    query = f"WorkflowType = '{LEAD_WORKFLOW_NAME}' AND ExecutionStatus = 'Running'"
    asked = 0
    async for found in client.list_workflows(query):
        try:
            await client.get_workflow_handle(found.id).signal(UPGRADE_SIGNAL)
            asked += 1
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:  # ended meanwhile
                raise
    return asked
