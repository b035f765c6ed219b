"""`BroadcastWorkflow`: one per broadcast. It waits for the start time, fixes the audience,
sends the A/B sample and picks the winner when there is a test, then sends the rest in
batches (an activity sends a few hundred messages over reused SMTP connections at the
broadcast's rate), waiting for recipients due later (a local send time, a server's "try
later"). Pause, resume and cancel are updates, answered once recorded; a cancel stops
before the next batch. History stays small: ids and counts only, continue-as-new after
`BATCHES_PER_RUN` batches."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field
from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.contracts import (
        PICK_WINNER,
        RECORD_BROADCAST_STATUS,
        SEND_BROADCAST_BATCH,
        SNAPSHOT_AUDIENCE,
        PickWinnerRequest,
        RecordBroadcastStatusRequest,
        SendBroadcastBatchRequest,
        SnapshotAudienceRequest,
    )
    from journeys.broadcasts import BroadcastStatus, batch_size_for
    from workflows.activity_calls import call

BROADCAST_WORKFLOW = "BroadcastWorkflow"
CONTROL_UPDATE = "control"
BATCHES_PER_RUN = 200
PARTITIONS = 2


class BroadcastPhase(StrEnum):
    """How far a broadcast got; carried across continue-as-new."""

    START = "start"  # waiting for the start time, audience not yet fixed
    SAMPLE = "sample"  # sending the A/B variants to the sample
    REST = "rest"  # sending to everyone else (the winner's subject, if any)


class BroadcastAction(StrEnum):
    """What a marketer can do to a running broadcast."""

    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"


class BroadcastInput(BaseModel):
    """Ids and settings only (no personal data); the rest is in `broadcasts`."""

    model_config = ConfigDict(frozen=True)

    broadcast_id: str
    send_at: datetime | None = None
    rate_per_second: float | None = Field(default=None, gt=0)
    ab_wait: timedelta | None = None  # set when there is an A/B test
    phase: BroadcastPhase = BroadcastPhase.START
    winner: int | None = None
    paused: bool = False
    # Sequences of batches sent side by side: with several workers, several cores send.
    partitions: int = Field(default=PARTITIONS, ge=1, le=16)


class BroadcastControl(BaseModel):
    action: BroadcastAction


@workflow.defn(name=BROADCAST_WORKFLOW)
class BroadcastWorkflow:
    """Send one broadcast (see the module's docstring)."""

    @workflow.init
    def __init__(self, plan: BroadcastInput) -> None:
        self._id = plan.broadcast_id
        self._paused = plan.paused
        self._cancelled = False
        self._started = plan.phase != BroadcastPhase.START
        self._status = BroadcastStatus.SCHEDULED
        if self._started:
            self._status = BroadcastStatus.PAUSED if plan.paused else BroadcastStatus.SENDING
        self._batches = 0

    @workflow.run
    async def run(self, plan: BroadcastInput) -> str:
        phase, winner = plan.phase, plan.winner
        if phase == BroadcastPhase.START:
            if not await self._wait_until(plan.send_at):
                return await self._finish(BroadcastStatus.CANCELLED)
            snapshot = await call(
                SNAPSHOT_AUDIENCE,
                SnapshotAudienceRequest(broadcast_id=plan.broadcast_id, now=workflow.now()),
                start_to_close_timeout=timedelta(minutes=10),
            )
            self._started = True
            if self._status == BroadcastStatus.SCHEDULED:
                self._status = BroadcastStatus.SENDING
            phase = BroadcastPhase.SAMPLE if snapshot.sample else BroadcastPhase.REST
        if phase == BroadcastPhase.SAMPLE:
            if not await self._send_phase(plan, sample=True, winner=None):
                return await self._after_interruption(plan, phase, winner)
            wait_until = workflow.now() + (plan.ab_wait or timedelta(0))
            if not await self._wait_until(wait_until):
                return await self._finish(BroadcastStatus.CANCELLED)
            picked = await call(
                PICK_WINNER,
                PickWinnerRequest(broadcast_id=plan.broadcast_id),
                start_to_close_timeout=timedelta(minutes=5),
            )
            phase, winner = BroadcastPhase.REST, picked.winner
        if not await self._send_phase(plan, sample=False, winner=winner):
            return await self._after_interruption(plan, phase, winner)
        return await self._finish(BroadcastStatus.DONE)

    async def _send_phase(self, plan: BroadcastInput, *, sample: bool, winner: int | None) -> bool:
        """Send every recipient of the phase, `plan.partitions` sequences of batches side
        by side; False when cancelled or time to continue as new (`_after_interruption`
        tells which)."""
        done = await asyncio.gather(
            *(
                self._send_partition(plan, sample, winner, partition)
                for partition in range(plan.partitions)
            )
        )
        return all(done)

    async def _send_partition(
        self, plan: BroadcastInput, sample: bool, winner: int | None, partition: int
    ) -> bool:
        rate = plan.rate_per_second
        limit = batch_size_for(rate / plan.partitions if rate else None)
        while True:
            await workflow.wait_condition(lambda: not self._paused or self._cancelled)
            if self._cancelled or self._batches >= BATCHES_PER_RUN:
                return False
            result = await call(
                SEND_BROADCAST_BATCH,
                SendBroadcastBatchRequest(
                    broadcast_id=plan.broadcast_id,
                    limit=limit,
                    rate_per_second=plan.rate_per_second,
                    sample=sample,
                    winner=winner,
                    partition=partition,
                    partitions=plan.partitions,
                ),
                start_to_close_timeout=timedelta(minutes=30),
                heartbeat_timeout=timedelta(seconds=10),
            )
            self._batches += 1
            if result.remaining:
                continue
            if result.next_due_at is None:
                return True
            await self._wait_until(result.next_due_at)

    async def _after_interruption(
        self, plan: BroadcastInput, phase: BroadcastPhase, winner: int | None
    ) -> str:
        if self._cancelled:
            return await self._finish(BroadcastStatus.CANCELLED)
        # A pause or resume being recorded answers its caller before this run ends.
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(
            plan.model_copy(update={"phase": phase, "winner": winner, "paused": self._paused})
        )

    async def _wait_until(self, moment: datetime | None) -> bool:
        """Sleep until `moment` (a cancel or resume wakes it); False when cancelled."""
        if moment is not None and moment > workflow.now():
            timeout = (moment - workflow.now()).total_seconds()
            try:
                await workflow.wait_condition(lambda: self._cancelled, timeout=timeout)
            except TimeoutError:  # the moment came
                pass
        return not self._cancelled

    async def _finish(self, status: BroadcastStatus) -> str:
        await self._record(status)
        # A cancel's update answers once recorded: let it, before the workflow ends.
        await workflow.wait_condition(workflow.all_handlers_finished)
        return status.value

    async def _record(self, status: BroadcastStatus) -> None:
        self._status = status
        await call(
            RECORD_BROADCAST_STATUS,
            RecordBroadcastStatusRequest(
                broadcast_id=self._id,
                status=status.value,
                now=workflow.now(),
            ),
            start_to_close_timeout=timedelta(minutes=1),
        )

    @workflow.update(name=CONTROL_UPDATE)
    async def control(self, control: BroadcastControl) -> str:
        """Pause, resume or cancel; answers with the status once it is recorded."""
        if control.action == BroadcastAction.CANCEL:
            self._cancelled = True
            await self._record(BroadcastStatus.CANCELLED)
        elif control.action == BroadcastAction.PAUSE:
            self._paused = True
            await self._record(BroadcastStatus.PAUSED)
        else:
            self._paused = False
            await self._record(
                BroadcastStatus.SENDING if self._started else BroadcastStatus.SCHEDULED
            )
        return self._status.value

    @control.validator
    def _may_control(self, control: BroadcastControl) -> None:
        if self._cancelled or self._status in (BroadcastStatus.DONE, BroadcastStatus.CANCELLED):
            raise ApplicationError(f"the broadcast is {self._status.value}", type="Finished")
