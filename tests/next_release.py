"""The next release, for the rolling-deploy test (tests/test_cluster.py): today's code plus
one change to what running journeys do, behind `workflow.patched` as docs/operations.md
says such a change must ship.

The change: a journey that ends sends one more email, a farewell, before it records its
end. Old histories replay the old way (no marker); a journey that reaches its end on a
worker of this release records the marker and sends it. An old worker that then gets such
a journey issues a different command there (nondeterminism) and its workflow task fails;
Temporal hands the task out again until a worker of this release takes it.

`python -c "from tests.next_release import main; main()"` runs a worker of this release,
configured from the environment like `worker.py`. The class lives in an importable module
(not `__main__`): the workflow sandbox re-imports it for every run.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.contracts import SEND_EMAIL, SendEmailRequest
    from workflows.contracts import WORKFLOW_NAME, JourneyInput, JourneyOutcome
    from workflows.journey import JourneyWorkflow

FAREWELL = "next-release-farewell"
FAREWELL_STEP = "farewell"
FAREWELL_TEMPLATE = "welcome_next_step"


@workflow.defn(name=WORKFLOW_NAME)
class NextReleaseJourney(JourneyWorkflow):
    """`JourneyWorkflow` with a farewell email at the end, for journeys that reach their end
    on this release."""

    @workflow.run
    async def run(self, input: JourneyInput) -> JourneyOutcome:
        return await super().run(input)

    async def _finish(self, step_id: str) -> JourneyOutcome:
        if workflow.patched(FAREWELL):
            info = workflow.info()
            await self._activity(
                SEND_EMAIL,
                SendEmailRequest(
                    lead_id=self._input.lead_id,
                    workflow_id=info.workflow_id,
                    step_id=FAREWELL_STEP,
                    template=FAREWELL_TEMPLATE,
                    idempotency_key=f"{info.workflow_id}/{info.first_execution_run_id}/farewell",
                    now=workflow.now(),
                ),
            )
        return await super()._finish(step_id)


def main() -> None:
    """Run a worker of the next release (settings from the environment)."""
    from starter import worker_wiring

    worker_wiring.JourneyWorkflow = NextReleaseJourney  # type: ignore[misc]
    worker_wiring.main()
