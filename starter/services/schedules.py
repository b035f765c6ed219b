"""The Temporal Schedules behind scheduled triggers: one per (task queue, journey,
segment), created or updated to match the code whenever a worker starts (an operator's
pause kept), and removed when the trigger is — only this deployment's."""

from __future__ import annotations

import dataclasses
import logging

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from journeys.registry import all_triggers
from journeys.triggers import OnSchedule
from workflows.scheduled_enrollment import (
    SCHEDULED_ENROLLMENT_WORKFLOW,
    ScheduledEnrollmentInput,
    trigger_schedule_id,
)

log = logging.getLogger(__name__)
PREFIX = "nurture-trigger:"


def _schedule(journey: str, trigger: OnSchedule, task_queue: str) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            SCHEDULED_ENROLLMENT_WORKFLOW,
            ScheduledEnrollmentInput(journey=journey, segment=trigger.segment),
            id=f"scheduled-enrollment:{journey}:{trigger.segment}",
            task_queue=task_queue,
        ),
        spec=ScheduleSpec(cron_expressions=[trigger.cron], time_zone_name=trigger.timezone),
    )


async def sync_schedules(client: Client, task_queue: str) -> list[str]:
    """Create or update the schedule of every scheduled trigger, delete the schedules of
    triggers no longer declared; the ids of the schedules kept."""
    wanted = {
        trigger_schedule_id(task_queue, journey, t.segment): _schedule(journey, t, task_queue)
        for journey, declared in all_triggers().items()
        for t in declared
        if isinstance(t, OnSchedule)
    }
    for schedule_id, schedule in wanted.items():
        try:
            await client.create_schedule(schedule_id, schedule)
            log.info("schedule %s created", schedule_id)
        except ScheduleAlreadyRunningError:

            async def replace(
                current: ScheduleUpdateInput, new: Schedule = schedule
            ) -> ScheduleUpdate:
                # The code's action and spec; an operator's pause (the state) stays.
                kept = dataclasses.replace(new, state=current.description.schedule.state)
                return ScheduleUpdate(schedule=kept)

            await client.get_schedule_handle(schedule_id).update(replace)
    own = f"{PREFIX}{task_queue}:"  # only this deployment's: others may run other code
    async for listed in await client.list_schedules():
        if listed.id.startswith(own) and listed.id not in wanted:
            await client.get_schedule_handle(listed.id).delete()
            log.info("schedule %s deleted: its trigger is gone", listed.id)
    return sorted(wanted)
