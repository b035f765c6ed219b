"""An opt-out sticks (issue 13), on the real stack: after a one-click unsubscribe no
enrollment, import, relayed form or CRM sync mails the lead again; only the lead's own form
fill and confirmation click bring it back. Bounced and erased addresses stay suppressed."""

from __future__ import annotations

import json
import re
import uuid
from email.message import EmailMessage
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from db.models import ConsentRecord, Lead, Suppression
from starter.dev.smtp_sink import SmtpSink
from starter.services.crm_signatures import SIGNATURE_HEADER, sign
from tests.conftest import ADMIN_KEY, CRM_SECRET, new_email
from tests.lifecycle_helpers import decider, eventually, lead_row
from tests.test_email_consent import CONFIRMED, enroll, link, local
from tests.traces import tables_holding
from workflows.contracts import TIMELINE_QUERY, TimelineEntry, journey_workflow_id


async def unsubscribed_lead(api: httpx.AsyncClient, smtp: SmtpSink, email: str, **lead: Any) -> str:
    """A confirmed lead that got the welcome email and unsubscribed with one click."""
    lead_id = await enroll(api, email, **lead)
    [welcome] = await smtp.wait_for(email, 1)
    return await unsubscribe(api, welcome, lead_id)


async def unsubscribe(api: httpx.AsyncClient, welcome: EmailMessage, lead_id: str) -> str:
    """From everything: the footer's link (the header's leaves only the email's topic)."""
    response = await api.post(local(link(welcome, "/u/")), content=b"List-Unsubscribe=One-Click")
    assert response.status_code == 200
    return lead_id


async def first_send_skipped(client: Client, journey: str, lead_id: str) -> list[str]:
    """The journey's timeline once its first email was skipped (it never went out)."""
    handle = client.get_workflow_handle(journey_workflow_id(journey, lead_id))

    async def timeline() -> list[str]:
        try:
            entries = await handle.query(TIMELINE_QUERY, result_type=list[TimelineEntry])
        except RPCError as exc:  # a journey the lead workflow starts may not be there yet
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            return []
        return [entry.what for entry in entries]

    return await eventually(timeline, lambda lines: any("skipped" in line for line in lines))


async def test_an_enrollment_claiming_confirmed_consent_does_not_resubscribe(
    api: httpx.AsyncClient, worker: Worker, smtp: SmtpSink, temporal_client: Client,
    sessions: async_sessionmaker,
) -> None:  # fmt: skip
    email = new_email()
    lead_id = await unsubscribed_lead(api, smtp, email)

    response = await api.post(
        "/v1/enrollments",
        json={"journey": "welcome-series", "lead": {"email": email}, "consent": CONFIRMED},
    )

    assert response.status_code == 202, response.text
    body = response.json()
    assert (body["consent_status"], body["suppressed"]) == ("unsubscribed", "unsubscribed")
    await first_send_skipped(temporal_client, "welcome-series", lead_id)
    assert len(smtp.to(email)) == 1  # the welcome before unsubscribing, nothing after
    async with sessions() as session:
        claim = (
            await session.execute(
                select(ConsentRecord).where(
                    ConsentRecord.lead_id == lead_id, ConsentRecord.action == "claim_refused"
                )
            )
        ).scalar_one()
    assert claim.source == "test"  # the claim is kept as evidence of the claim


async def test_an_enrollment_without_consent_sends_nothing_to_an_unsubscribed_lead(
    api: httpx.AsyncClient, worker: Worker, smtp: SmtpSink, temporal_client: Client,
    sessions: async_sessionmaker,
) -> None:  # fmt: skip
    email = new_email()
    lead_id = await unsubscribed_lead(api, smtp, email)

    response = await api.post(
        "/v1/enrollments", json={"journey": "win-back", "lead": {"email": email}}
    )

    assert response.json()["suppressed"] == "unsubscribed"
    await first_send_skipped(temporal_client, "win-back", lead_id)
    assert len(smtp.to(email)) == 1  # neither "We miss you" nor a double opt-in
    assert (await lead_row(sessions, lead_id)).consent_status == "unsubscribed"


async def test_a_csv_import_claiming_confirmed_consent_mails_nobody_who_unsubscribed(
    api: httpx.AsyncClient, worker: Worker, smtp: SmtpSink, temporal_client: Client,
    sessions: async_sessionmaker,
) -> None:  # fmt: skip
    email = new_email()
    lead_id = await unsubscribed_lead(api, smtp, email)
    fresh = new_email("fresh")

    response = await api.post(
        "/v1/enrollment-jobs/csv",
        params={"journey": "webinar-registration", "consent_source": "old list",
                "consent_confirmed": "true"},
        content=f"email,first_name\n{email},Una\n{fresh},Fred\n",
        headers={"Content-Type": "text/csv"},
    )  # fmt: skip

    assert response.status_code == 202, response.text
    job_url = f"/v1/enrollment-jobs/{response.json()['job_id']}"
    job = await eventually(lambda: _json(api.get(job_url)), lambda j: j["status"] == "done")
    assert job["enrolled"] == 2
    assert (job["suppressed_rows"], job["suppressed"]) == (
        1,
        [{"line": 2, "reason": "unsubscribed"}],
    )
    await first_send_skipped(temporal_client, "webinar-registration", lead_id)
    await smtp.wait_for(fresh, 1)  # the rest of the list is mailed as before
    assert len(smtp.to(email)) == 1
    assert (await lead_row(sessions, lead_id)).consent_status == "unsubscribed"


async def _json(request: object) -> dict:
    response = await request  # type: ignore[misc]  # a coroutine or a task
    return response.json()


async def test_a_form_submission_relayed_by_a_backend_does_not_resubscribe(
    api: httpx.AsyncClient, worker: Worker, smtp: SmtpSink, temporal_client: Client,
    sessions: async_sessionmaker,
) -> None:  # fmt: skip
    email = new_email()
    lead_id = await unsubscribed_lead(api, smtp, email)

    response = await api.post(
        "/v1/forms/whitepaper-download/submissions",
        json={"lead": {"email": email}, "consent": {"marketing": True}, "ip": "203.0.113.7"},
    )

    assert response.status_code == 202, response.text
    body = response.json()
    assert body["suppressed"] == "unsubscribed"
    assert body["resubscribe_url"] == "http://nurture.example/f/whitepaper-download"
    await first_send_skipped(temporal_client, "whitepaper-nurture", lead_id)
    assert len(smtp.to(email)) == 1  # no whitepaper, no confirmation email
    assert (await lead_row(sessions, lead_id)).consent_status == "unsubscribed"


async def test_a_crm_status_change_sends_nothing_to_an_unsubscribed_lead(
    api: httpx.AsyncClient, worker: Worker, smtp: SmtpSink, temporal_client: Client,
    sessions: async_sessionmaker,
) -> None:  # fmt: skip
    lead: dict[str, Any] = decider()
    email = str(lead.pop("email"))
    lead_id = await enroll(api, email, **lead)
    [welcome] = await smtp.wait_for(email, 1)
    await api.post(
        "/v1/events", json={"lead_id": lead_id, "type": "demo_request", "event_id": "demo-1"}
    )
    await eventually(lambda: lead_row(sessions, lead_id), lambda r: r.lifecycle_stage == "mql")
    await unsubscribe(api, welcome, lead_id)
    body = json.dumps({"lead_id": lead_id, "status": "Unqualified", "rep": "kim"}).encode()

    response = await api.post(
        "/v1/crm/webhook", content=body, headers={SIGNATURE_HEADER: sign(body, CRM_SECRET.encode())}
    )

    assert response.status_code == 202, response.text
    await first_send_skipped(temporal_client, "recycled-nurture", lead_id)
    assert len(smtp.to(email)) == 1
    assert (await lead_row(sessions, lead_id)).consent_status == "unsubscribed"


async def sign_up_on_the_hosted_form(api: httpx.AsyncClient, form: str, email: str) -> str:
    page = await api.get(f"/f/{form}")
    assert page.status_code == 200
    token = re.search(r'name="token" value="([^"]+)"', page.text)
    assert token, page.text
    response = await api.post(
        f"/f/{form}",
        data={"token": token.group(1), "email": email, "first_name": "Una", "consent": "yes"},
        headers={"Origin": "http://nurture.example", "User-Agent": "Browser/2.0"},
    )
    assert response.status_code == 200, response.text
    return response.text


async def test_the_leads_own_form_fill_and_confirmation_click_resubscribe_it(
    api: httpx.AsyncClient, worker: Worker, smtp: SmtpSink, sessions: async_sessionmaker
) -> None:
    email = new_email()
    lead_id = await unsubscribed_lead(api, smtp, email)

    page = await sign_up_on_the_hosted_form(api, "newsletter", email)

    assert "sent you an email with a link to confirm" in page
    confirmation = (await smtp.wait_for(email, 2))[1]
    assert confirmation["Subject"].startswith("Please confirm")
    assert (await api.get(f"/v1/leads/{lead_id}")).json()["suppressed"] == "unsubscribed"
    confirmed = await api.post(local(link(confirmation, "/c/")))
    assert confirmed.status_code == 200 and "confirmed" in confirmed.text
    newsletter = (await smtp.wait_for(email, 3, within=30))[2]
    assert newsletter["Subject"] != confirmation["Subject"]  # marketing mail flows again
    view = (await api.get(f"/v1/leads/{lead_id}")).json()
    assert (view["consent_status"], view["suppressed"]) == ("confirmed", None)
    async with sessions() as session:
        actions = (
            await session.execute(
                select(ConsentRecord.action, ConsentRecord.user_agent)
                .where(ConsentRecord.lead_id == lead_id)
                .order_by(ConsentRecord.id)
            )
        ).all()
    assert [a for a, _ in actions][-2:] == ["resubscribe_requested", "confirmed"]
    assert actions[-2].user_agent == "Browser/2.0"  # the form fill's evidence


async def test_a_confirmation_link_sent_before_an_unsubscribe_resubscribes_nobody(
    api: httpx.AsyncClient, worker: Worker, smtp: SmtpSink, sessions: async_sessionmaker
) -> None:
    email = new_email()
    lead_id = await enroll(api, email, consent={"source": "webinar form"})
    [confirmation] = await smtp.wait_for(email, 1)
    old_link = local(link(confirmation, "/c/"))
    await api.post(old_link)
    [_, welcome] = await smtp.wait_for(email, 2)
    await api.post(local(link(welcome, "/u/")))

    again = await api.post(old_link)

    assert again.status_code == 409
    assert "You unsubscribed after this link was sent" in again.text
    assert (await lead_row(sessions, lead_id)).consent_status == "unsubscribed"


async def test_a_bounced_address_stays_suppressed_whatever_an_enrollment_claims(
    api: httpx.AsyncClient, worker: Worker, smtp: SmtpSink, temporal_client: Client,
    sessions: async_sessionmaker,
) -> None:  # fmt: skip
    email = f"bounce-{uuid.uuid4().hex[:8]}@example.com"  # the sink answers 550 for these
    lead_id = await enroll(api, email)
    await eventually(lambda: lead_row(sessions, lead_id), lambda r: r.consent_status == "bounced")

    response = await api.post(
        "/v1/enrollments",
        json={"journey": "welcome-series", "lead": {"email": email}, "consent": CONFIRMED},
    )

    assert response.json()["suppressed"] == "bounced"
    lines = await first_send_skipped(temporal_client, "welcome-series", lead_id)
    assert any("lead bounced" in line for line in lines)
    assert (await lead_row(sessions, lead_id)).consent_status == "bounced"


async def test_an_erased_address_that_had_unsubscribed_gets_nothing_when_imported_again(
    api: httpx.AsyncClient, worker: Worker, smtp: SmtpSink, temporal_client: Client,
    sessions: async_sessionmaker,
) -> None:  # fmt: skip
    email = new_email("erased")
    old_id = await unsubscribed_lead(api, smtp, email)
    erased = await api.delete(
        f"/v1/leads/{old_id}", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    )
    assert erased.status_code == 200, erased.text
    assert await tables_holding(sessions, email) == []
    async with sessions() as session:
        assert (await session.execute(select(Suppression))).scalars().first() is not None

    response = await api.post(
        "/v1/enrollments",
        json={"journey": "welcome-series", "lead": {"email": email}, "consent": CONFIRMED},
    )

    body = response.json()
    assert body["lead_id"] != old_id
    assert (body["consent_status"], body["suppressed"]) == ("unsubscribed", "unsubscribed")
    await first_send_skipped(temporal_client, "welcome-series", body["lead_id"])
    assert len(smtp.to(email)) == 1  # the welcome before the unsubscribe, nothing since


async def opted_out_before_the_list(sessions: async_sessionmaker, email: str) -> str:
    """A lead unsubscribed by an older version: its status says so, the list has no entry."""
    async with sessions() as session:
        lead = Lead(email=email, consent_status="unsubscribed")
        session.add(lead)
        await session.commit()
        return lead.id


async def test_an_own_form_fill_of_an_unlisted_opt_out_lists_it_so_claims_stay_refused(
    api: httpx.AsyncClient, worker: Worker, smtp: SmtpSink, sessions: async_sessionmaker
) -> None:
    email = new_email("older")
    lead_id = await opted_out_before_the_list(sessions, email)
    await sign_up_on_the_hosted_form(api, "newsletter", email)

    claim = await api.post(
        "/v1/enrollments",
        json={"journey": "win-back", "lead": {"email": email}, "consent": CONFIRMED},
    )

    assert claim.json()["suppressed"] == "unsubscribed"
    assert (await lead_row(sessions, lead_id)).consent_status == "pending"  # its own request


async def test_a_lead_moved_to_a_suppressed_address_takes_the_addresss_suppression(
    api: httpx.AsyncClient, worker: Worker, smtp: SmtpSink, temporal_client: Client
) -> None:
    suppressed = new_email("moved")
    old_id = await unsubscribed_lead(api, smtp, suppressed)
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    assert (await api.delete(f"/v1/leads/{old_id}", headers=admin)).status_code == 200
    external_id = f"crm-{uuid.uuid4().hex[:8]}"
    first = new_email("first")
    pending = await api.post(
        "/v1/enrollments",
        json={"journey": "welcome", "lead": {"email": first, "external_id": external_id}},
    )
    await smtp.wait_for(first, 1)  # its double opt-in, at its first address

    moved = await api.post(
        "/v1/enrollments",
        json={"journey": "win-back", "lead": {"email": suppressed, "external_id": external_id}},
    )

    assert pending.json()["consent_status"] == "pending"
    assert (moved.json()["consent_status"], moved.json()["suppressed"]) == (
        "unsubscribed",
        "unsubscribed",
    )
    await first_send_skipped(temporal_client, "win-back", moved.json()["lead_id"])
    assert len(smtp.to(suppressed)) == 1  # the welcome before the unsubscribe, nothing since
