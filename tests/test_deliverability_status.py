"""Transient bounces and deliverability status (issue 16): the pure policy first, then on
the real stack — N transient bounces suppress, and the lead view shows each status."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.testing import ActivityEnvironment
from temporalio.worker import Worker

from activities.email import EmailActivities
from db.models import ConsentRecord, OutboxEmail
from journeys.bounce_policy import (
    DeliverabilityStatus,
    SoftBouncePolicy,
    TransientBounce,
    deliverability_status,
    failed_messages,
    suppress_after_transient,
)
from reporting.deliverability import (
    Feedback,
    FeedbackKind,
    SendSource,
    SendSourceKind,
    Sent,
    deliverability_rates,
    send_source,
)
from starter.services.link_tokens import LinkTokens
from starter.settings import Settings
from tests.conftest import ADMIN_KEY, new_email
from tests.lifecycle_helpers import eventually
from tests.test_email_activity import make_lead, request
from tests.test_inbound import BOUNCE_DOMAIN
from tests.test_inbound import _deliver as deliver
from tests.test_inbound import _report as report

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
POLICY = SoftBouncePolicy(limit=3, window=timedelta(days=7))


def bounce(outbox_id: int, days_ago: float, action: str = "failed") -> TransientBounce:
    return TransientBounce(outbox_id, NOW - timedelta(days=days_ago), action)


def test_three_messages_bounced_within_the_window_suppress() -> None:
    reports = [bounce(1, 6), bounce(2, 3), bounce(3, 0)]

    assert suppress_after_transient(reports, NOW, POLICY)


def test_two_are_counted_but_do_not_suppress() -> None:
    assert not suppress_after_transient([bounce(1, 1), bounce(2, 0)], NOW, POLICY)


def test_reports_older_than_the_window_do_not_count() -> None:
    reports = [bounce(1, 8), bounce(2, 7.5), bounce(3, 0)]

    assert failed_messages(reports, NOW, POLICY) == 1


def test_several_reports_about_one_message_are_one_failure() -> None:
    reports = [bounce(1, 2), bounce(1, 1), bounce(1, 0)]

    assert not suppress_after_transient(reports, NOW, POLICY)


def test_a_delayed_warning_is_no_failure() -> None:
    reports = [bounce(1, 2, "delayed"), bounce(2, 1, "Delayed"), bounce(3, 0)]

    assert failed_messages(reports, NOW, POLICY) == 1


def test_the_limit_and_window_are_a_setting() -> None:
    from starter.settings import Settings

    policy = Settings(NURTURE_SOFT_BOUNCES="5/30d").soft_bounce_policy

    assert (policy.limit, policy.window) == (5, timedelta(days=30))


@pytest.mark.parametrize("value", ["0/7d", "3/0d", "3", "three/7d", "3/7"])
def test_a_malformed_soft_bounce_setting_is_refused_naming_it(value: str) -> None:
    from pydantic import ValidationError

    from starter.settings import Settings

    with pytest.raises(ValidationError, match="NURTURE_SOFT_BOUNCES"):
        Settings(NURTURE_SOFT_BOUNCES=value)


@pytest.mark.parametrize(
    ("consent", "failures", "status"),
    [
        ("confirmed", 0, DeliverabilityStatus.ACTIVE),
        ("pending", 0, DeliverabilityStatus.ACTIVE),
        ("unsubscribed", 0, DeliverabilityStatus.ACTIVE),  # reachable, just unwilling
        ("confirmed", 2, DeliverabilityStatus.SOFT_BOUNCING),
        ("bounced", 0, DeliverabilityStatus.BOUNCED),
        ("bounced", 3, DeliverabilityStatus.BOUNCED),
        ("complained", 1, DeliverabilityStatus.COMPLAINED),
    ],
)
def test_the_deliverability_status_follows_consent_and_recent_failures(
    consent: str, failures: int, status: DeliverabilityStatus
) -> None:
    assert deliverability_status(consent, failures) == status


# --- on the real stack --------------------------------------------------------------------

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


async def send(
    settings: Settings, sessions: async_sessionmaker, lead_id: str, workflow_id: str = "wf-test"
) -> str:
    """One journey email to the lead (from `workflow_id`); its return path."""
    configured = settings.model_copy(update={"bounce_domain": BOUNCE_DOMAIN})
    key = f"test/{uuid.uuid4()}"
    await ActivityEnvironment().run(
        EmailActivities(configured, sessions).send_email,
        request(lead_id, key).model_copy(update={"workflow_id": workflow_id}),
    )
    async with sessions() as session:
        outbox_id = (
            await session.execute(select(OutboxEmail.id).where(OutboxEmail.idempotency_key == key))
        ).scalar_one()
    return LinkTokens(settings.require_secret_key()).return_path(outbox_id, BOUNCE_DOMAIN)


def transient(return_path: str) -> bytes:
    """Postfix's DSN, made transient: 452 4.2.2, mailbox full."""
    raw = report("postfix_bounce.eml", return_path)
    for permanent, temporary in ((b"5.1.1", b"4.2.2"), (b"550", b"452"),
                                 (b"User unknown", b"Mailbox full")):  # fmt: skip
        raw = raw.replace(permanent, temporary)
    return raw


async def view(api: httpx.AsyncClient, lead_id: str) -> dict[str, Any]:
    answer = await api.get(f"/v1/leads/{lead_id}", headers=ADMIN)
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def status_is(status: str) -> Any:
    return lambda found: found["deliverability"]["status"] == status


async def test_a_lead_nothing_came_back_for_is_active(
    sessions: async_sessionmaker, api: httpx.AsyncClient
) -> None:
    lead_id = await make_lead(sessions, new_email("active"))

    found = await view(api, lead_id)

    assert found["deliverability"] == {
        "status": "active", "transient_bounces": 0, "mail_held_until": None, "evidence": None
    }  # fmt: skip


async def test_transient_bounces_make_a_lead_soft_bouncing_and_the_third_suppresses_it(
    settings: Settings,
    sessions: async_sessionmaker,
    worker: Worker,
    listener: int,
    api: httpx.AsyncClient,
) -> None:
    lead_id = await make_lead(sessions, new_email("soft"))
    paths = [await send(settings, sessions, lead_id) for _ in range(3)]

    await deliver(listener, paths[0], transient(paths[0]))
    await deliver(listener, paths[1], transient(paths[1]))
    soft = await eventually(
        lambda: view(api, lead_id), lambda f: f["deliverability"]["transient_bounces"] == 2
    )
    await deliver(listener, paths[2], transient(paths[2]))
    hard = await eventually(lambda: view(api, lead_id), status_is("bounced"))

    assert soft["deliverability"]["status"] == "soft_bouncing"
    assert soft["consent_status"] == "confirmed"
    evidence = soft["deliverability"]["evidence"]
    assert (evidence["kind"], evidence["status_code"]) == ("bounce", "4.2.2")
    assert "Mailbox full" in evidence["diagnostic"]
    assert hard["consent_status"] == "bounced" and hard["suppressed"] == "bounced"
    assert "address suppressed" in hard["deliverability"]["evidence"]["action"]
    assert [e["kind"] for e in hard["timeline"]].count("mail") == 3
    async with sessions() as session:
        record = (
            await session.execute(
                select(ConsentRecord.source).where(
                    ConsentRecord.lead_id == lead_id, ConsentRecord.action == "bounced"
                )
            )
        ).scalar_one()
    assert record is not None and "3 transient bounces in 7 d" in record and "4.2.2" in record


async def test_two_reports_about_one_message_are_one_transient_bounce(
    settings: Settings,
    sessions: async_sessionmaker,
    worker: Worker,
    listener: int,
    api: httpx.AsyncClient,
) -> None:
    lead_id = await make_lead(sessions, new_email("one-message"))
    path = await send(settings, sessions, lead_id)

    for _ in range(3):  # three reports (distinct Message-IDs) about the same message
        await deliver(listener, path, transient(path))

    found = await eventually(
        lambda: view(api, lead_id),
        lambda f: len([e for e in f["timeline"] if e["kind"] == "mail"]) == 3,
    )
    assert found["deliverability"]["status"] == "soft_bouncing"
    assert found["deliverability"]["transient_bounces"] == 1
    assert found["consent_status"] == "confirmed"


async def test_a_second_report_about_a_message_does_not_count_as_another_message(
    settings: Settings,
    sessions: async_sessionmaker,
    worker: Worker,
    listener: int,
    api: httpx.AsyncClient,
) -> None:
    lead_id = await make_lead(sessions, new_email("two-messages"))
    first, second = [await send(settings, sessions, lead_id) for _ in range(2)]

    # Message one bounces once, message two twice: two failed messages, not three.
    for path in (first, second, second):
        await deliver(listener, path, transient(path))

    found = await eventually(
        lambda: view(api, lead_id),
        lambda f: len([e for e in f["timeline"] if e["kind"] == "mail"]) == 3,
    )
    assert found["consent_status"] == "confirmed"
    assert found["deliverability"]["status"] == "soft_bouncing"
    assert found["deliverability"]["transient_bounces"] == 2


@pytest.mark.parametrize(
    ("sample", "status", "code"),
    [("postfix_bounce.eml", "bounced", "5.1.1"), ("arf_complaint.eml", "complained", None)],
)
async def test_the_lead_view_shows_a_bounce_or_a_complaint_with_its_evidence(
    settings: Settings,
    sessions: async_sessionmaker,
    worker: Worker,
    listener: int,
    api: httpx.AsyncClient,
    sample: str,
    status: str,
    code: str | None,
) -> None:
    lead_id = await make_lead(sessions, new_email(status))
    path = await send(settings, sessions, lead_id)

    await deliver(listener, path, report(sample, path))

    found = await eventually(lambda: view(api, lead_id), status_is(status))
    evidence = found["deliverability"]["evidence"]
    assert evidence["status_code"] == code and evidence["at"]
    assert evidence["kind"] == ("bounce" if code else "complaint")


# --- bounce and complaint rates per send source (pure) ------------------------------------


def test_a_send_source_is_a_journey_or_a_broadcast_and_internal_mail_is_none() -> None:
    assert send_source("journey:welcome:0b6f3a51") == SendSource(SendSourceKind.JOURNEY, "welcome")
    assert send_source("broadcast:b-42") == SendSource(SendSourceKind.BROADCAST, "b-42")
    assert send_source("lead:0b6f3a51") is None  # a notification to a rep
    assert send_source("wf-test") is None


def sent_by(source: str, count: int, start: int = 0) -> list[Sent]:
    return [Sent(start + n, f"{source}:lead-{n}") for n in range(count)]


def test_a_complaint_rate_at_gmails_threshold_warns() -> None:
    sent = sent_by("journey:welcome", 300)
    [rates] = deliverability_rates(sent, [Feedback(7, FeedbackKind.COMPLAINT)])

    assert (rates.sent, rates.complained, rates.complaint_rate) == (300, 1, 0.00333)
    assert any("Gmail" in w for w in rates.warnings)


def test_a_complaint_rate_below_the_threshold_does_not_warn() -> None:
    [rates] = deliverability_rates(
        sent_by("journey:welcome", 400), [Feedback(7, FeedbackKind.COMPLAINT)]
    )

    assert rates.complaint_rate == 0.0025 and rates.warnings == []


def test_a_message_counts_once_and_a_permanent_bounce_outranks_a_transient_one() -> None:
    feedback = [
        Feedback(1, FeedbackKind.TRANSIENT_BOUNCE),
        Feedback(1, FeedbackKind.PERMANENT_BOUNCE),
        Feedback(2, FeedbackKind.TRANSIENT_BOUNCE),
        Feedback(2, FeedbackKind.TRANSIENT_BOUNCE),
    ]

    [rates] = deliverability_rates(sent_by("journey:welcome", 10), feedback)

    assert (rates.bounced, rates.soft_bounced, rates.bounce_rate) == (1, 1, 0.1)
    assert any("bounce rate" in w for w in rates.warnings)


def test_rates_are_per_source_journeys_and_broadcasts_alike() -> None:
    sent = [
        *sent_by("journey:welcome", 2),
        *sent_by("broadcast:b-1", 4, start=100),
        Sent(999, "lead:x"),  # internal mail: not counted
    ]
    feedback = [Feedback(100, FeedbackKind.COMPLAINT), Feedback(999, FeedbackKind.COMPLAINT)]

    rates = deliverability_rates(sent, feedback)

    assert [(r.kind, r.name, r.sent, r.complained) for r in rates] == [
        (SendSourceKind.JOURNEY, "welcome", 2, 0),
        (SendSourceKind.BROADCAST, "b-1", 4, 1),
    ]


# --- the rates in the analytics API --------------------------------------------------------


async def test_the_analytics_show_a_journeys_bounce_and_complaint_rates_with_the_warning(
    settings: Settings,
    sessions: async_sessionmaker,
    worker: Worker,
    listener: int,
    api: httpx.AsyncClient,
) -> None:
    journey = f"rates-{uuid.uuid4().hex[:8]}"
    paths = []
    for n in range(4):
        lead_id = await make_lead(sessions, new_email(f"rates{n}"))
        paths.append(
            await send(settings, sessions, lead_id, workflow_id=f"journey:{journey}:{lead_id}")
        )

    await deliver(listener, paths[0], report("arf_complaint.eml", paths[0]))
    await deliver(listener, paths[1], report("postfix_bounce.eml", paths[1]))
    await deliver(listener, paths[2], transient(paths[2]))

    def settled(answer: httpx.Response) -> bool:
        found = answer.json()
        return bool(found) and found[0]["complained"] == 1 and found[0]["soft_bounced"] == 1 \
            and found[0]["bounced"] == 1  # fmt: skip

    answer = await eventually(
        lambda: api.get("/v1/analytics/deliverability", params={"name": journey}), settled
    )
    [rates] = answer.json()
    assert (rates["kind"], rates["name"], rates["sent"]) == ("journey", journey, 4)
    assert (rates["bounce_rate"], rates["soft_bounce_rate"], rates["complaint_rate"]) == (
        0.25, 0.25, 0.25
    )  # fmt: skip
    assert any("0.3%" in w for w in rates["warnings"])
    refused = await api.get("/v1/analytics/deliverability", params={"kind": "newsletter"})
    assert refused.status_code == 422 and refused.json()["detail"][0]["loc"][-1] == "kind"
