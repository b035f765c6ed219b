"""`InboundMessageWorkflow`: one per message that came back, started by the listener once
the message is stored; it classifies and acts through one activity (ids only in history).
The workflow id is derived from the stored row, so a redelivery starts nothing new."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.contracts import (
        PROCESS_INBOUND,
        ProcessInboundRequest,
        ProcessInboundResult,
    )
    from workflows.activity_calls import call

INBOUND_MESSAGE_WORKFLOW = "InboundMessageWorkflow"


def inbound_workflow_id(inbound_id: int) -> str:
    return f"inbound:{inbound_id}"


@workflow.defn(name=INBOUND_MESSAGE_WORKFLOW)
class InboundMessageWorkflow:
    """Process one stored inbound message."""

    @workflow.run
    async def run(self, inbound_id: int) -> ProcessInboundResult:
        return await call(
            PROCESS_INBOUND,
            ProcessInboundRequest(inbound_id=inbound_id),
            start_to_close_timeout=timedelta(minutes=1),
        )
