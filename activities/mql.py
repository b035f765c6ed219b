"""The MQL moment as one activity: a qualifying lead's stage change and its CRM handover.

Two activities before (`change_stage`, then `hand_over_lead`), with a workflow task
between them: one round through the workflow and the task queue less between a lead
qualifying and the CRM receiving it. Each half keeps its own idempotency key, so a retry
after a crash repeats neither the transition nor the delivery.
"""

from __future__ import annotations

from temporalio import activity

from activities.contracts import BECOME_MQL, BecomeMqlRequest, BecomeMqlResult
from activities.crm import CrmActivities
from activities.lifecycle import LifecycleActivities


class MqlActivities:
    """The stage change and the handover, as the lead workflow's two activities do them."""

    def __init__(self, stages: LifecycleActivities, crm: CrmActivities) -> None:
        self._stages = stages
        self._crm = crm

    @activity.defn(name=BECOME_MQL.name)
    async def become_mql(self, request: BecomeMqlRequest) -> BecomeMqlResult:
        """Make the lead an MQL (once per stage key), then hand it over (once per
        handover key)."""
        stage = await self._stages.change_stage(request.stage)
        handover = await self._crm.hand_over_lead(request.handover)
        return BecomeMqlResult(stage=stage, handover=handover)
