"""The bare-Temporal baselines, and their worker.

- `BareWorkflow`: a minimal workflow with one no-op activity (enrollment baseline).
- `BareSleeper`: sleeps until a moment, then runs the engine's own `send_email` activity
  with the request a journey would send (sleeping/timer/CPU baseline: the same activities,
  none of the journey interpreter, lead workflow or scoring).
- `BareHandover`: waits for a signal, then one activity POSTs to the CRM (latency baseline).
- `BareFirstEmail`: one activity renders the welcome template and sends it over SMTP
  (enrollment → first email baseline: the same work, none of the bookkeeping).
- `BareTrigger`: waits for a signal, then runs the engine's `send_email` activity once with
  the request the triggered journey's first step sends (event → segment → email baseline).
- `BareEventSink`: takes `event` signals and counts them (the events baseline: a row and a
  signal per event, nothing else).

`python -m bench.bare ADDRESS TASK_QUEUE` runs the worker (settings from the environment,
like the engine's worker).
"""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime, timedelta

from temporalio import activity, workflow
from temporalio.worker import Worker

with workflow.unsafe.imports_passed_through():
    from email.message import EmailMessage
    from functools import cache

    import aiosmtplib
    import httpx

    from activities.contracts import SEND_EMAIL, SendEmailRequest, SendEmailResult
    from activities.smtp_delivery import WIRE_POLICY
    from journeys.rendering import render_email, template_context
    from starter.settings import Settings, load_settings


@activity.defn(name="bare_effect")
async def bare_effect(lead: str) -> str:
    return lead


_HTTP: list[httpx.AsyncClient] = []  # one for the worker's life, as the CRM activity keeps


@activity.defn(name="bare_post")
async def bare_post(url: str) -> int:
    if not _HTTP:
        _HTTP.append(httpx.AsyncClient(timeout=10))
    response = await _HTTP[0].post(url, json={"bare": activity.info().workflow_id})
    response.raise_for_status()
    return response.status_code


async def _send_email(lead_id: str, step_id: str, template: str, answer: bool = False) -> str:
    """The engine's `send_email` activity, with the request a journey's step would send."""
    request = SendEmailRequest(
        lead_id=lead_id,
        workflow_id=workflow.info().workflow_id,
        step_id=step_id,
        template=template,
        idempotency_key=f"{workflow.info().workflow_id}:{step_id}",
        now=workflow.now(),
        answer=answer,
    )
    result = await workflow.execute_activity(
        SEND_EMAIL.name,
        request,
        result_type=SendEmailResult,
        start_to_close_timeout=timedelta(seconds=60),
    )
    return result.status


@cache
def _settings() -> Settings:
    return load_settings()


@activity.defn(name="bare_render_and_send")
async def bare_render_and_send(address: str) -> str:
    """The first email stripped to its work: render the welcome template, send it over
    SMTP (a connection per message, as the engine's send does); no database, no outbox."""
    settings = _settings()
    context = template_context(
        {"id": address, "email": address, "first_name": None},
        base_url=settings.public_base_url, sender_name="Nurture", postal_address="1 Bench Street",
    )  # fmt: skip
    rendered = render_email("welcome", context)
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = address
    message["Subject"] = rendered.subject
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    await aiosmtplib.send(
        message.as_bytes(policy=WIRE_POLICY), sender=settings.mail_from, recipients=[address],
        hostname=settings.smtp_host, port=settings.smtp_port,
    )  # fmt: skip
    return address


@workflow.defn(name="BareFirstEmail")
class BareFirstEmail:
    """Enrollment → first email stripped to its minimum: one activity renders and sends."""

    @workflow.run
    async def run(self, address: str) -> str:
        return await workflow.execute_activity(
            bare_render_and_send, address, start_to_close_timeout=timedelta(seconds=60)
        )


@workflow.defn(name="BareWorkflow")
class BareWorkflow:
    @workflow.run
    async def run(self, lead: str) -> str:
        return await workflow.execute_activity(
            bare_effect, lead, start_to_close_timeout=timedelta(seconds=30)
        )


@workflow.defn(name="BareSleeper")
class BareSleeper:
    @workflow.run
    async def run(self, lead_id: str, until: datetime) -> str:
        await workflow.sleep(max(timedelta(0), until - workflow.now()))
        return await _send_email(lead_id, "hello", "welcome")


@workflow.defn(name="BareHandover")
class BareHandover:
    def __init__(self) -> None:
        self._clicked = False

    @workflow.signal(name="click")
    def click(self) -> None:
        self._clicked = True

    @workflow.run
    async def run(self, url: str) -> int:
        await workflow.wait_condition(lambda: self._clicked)
        return await workflow.execute_activity(
            bare_post, url, start_to_close_timeout=timedelta(seconds=30)
        )


@workflow.defn(name="BareTrigger")
class BareTrigger:
    """A lead's trigger stripped to its minimum: a signal, then the journey's first email."""

    def __init__(self) -> None:
        self._fired = False

    @workflow.signal(name="fire")
    def fire(self) -> None:
        self._fired = True

    @workflow.run
    async def run(self, lead_id: str) -> str:
        await workflow.wait_condition(lambda: self._fired)
        # pricing-follow-up's first step: an answer to the lead's action (sent at once).
        return await _send_email(lead_id, "follow_up", "pricing_follow_up", answer=True)


@workflow.defn(name="BareEventSink")
class BareEventSink:
    """A lead's workflow stripped to taking events: it counts them."""

    def __init__(self) -> None:
        self._seen = 0

    @workflow.signal(name="event")
    def event(self) -> None:
        self._seen += 1

    @workflow.query(name="seen")
    def seen(self) -> int:
        return self._seen

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)


async def main(address: str, task_queue: str) -> None:
    from db.engine import create_engine_for, session_factory
    from starter.settings import load_settings
    from starter.temporal_client import connect
    from starter.worker_wiring import workflow_runner

    settings = load_settings()
    sessions = session_factory(create_engine_for(settings.effective_database_url))
    from activities.email import EmailActivities

    email = EmailActivities(settings, sessions)
    client = await connect(address, "default")
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=[
            BareWorkflow,
            BareSleeper,
            BareHandover,
            BareTrigger,
            BareFirstEmail,
            BareEventSink,
        ],
        activities=[bare_effect, bare_post, bare_render_and_send, email.send_email],
        workflow_runner=workflow_runner(),
        max_cached_workflows=settings.worker_max_cached_workflows,
        max_concurrent_activities=settings.worker_max_concurrent_activities,
        max_concurrent_workflow_tasks=settings.worker_max_concurrent_workflow_tasks,
    )
    print("worker on", task_queue, flush=True)
    await worker.run()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
