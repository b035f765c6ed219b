"""Tracking, consent and erasure on the real stack: API → Temporal → worker → PostgreSQL →
SMTP sink, and the public signed-link endpoints."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import uuid
from email.message import EmailMessage

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.worker import Worker

from db.models import ConsentRecord, EngagementEvent, Enrollment
from starter.dev.smtp_sink import SmtpSink
from starter.services.preview import preview_template
from starter.settings import Settings
from tests.conftest import ADMIN_KEY, body_text, new_email
from tests.lifecycle_helpers import eventually, lead_row
from tests.traces import history_holds, tables_holding
from workflows.contracts import TIMELINE_QUERY, TimelineEntry, lead_workflow_id

CONFIRMED = {"source": "test", "confirmed": True}


async def enroll(
    api: httpx.AsyncClient, email: str, consent: dict | None = CONFIRMED, **lead: object
) -> str:
    body: dict = {"journey": "welcome", "lead": {"email": email, **lead}}
    if consent is not None:
        body["consent"] = consent
    response = await api.post("/v1/enrollments", json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["lead_id"])


def link(mail: EmailMessage, path: str) -> str:
    html = body_text(mail, "html")
    found = re.search(rf'(?:href|src)="(http://nurture\.example{re.escape(path)}[^"]+)"', html)
    assert found, html
    return found.group(1).replace("&amp;", "&")


def local(url: str) -> str:
    return url.removeprefix("http://nurture.example")


async def test_marketing_email_has_one_click_unsubscribe_headers_and_footer(
    api: httpx.AsyncClient, worker: Worker, smtp: SmtpSink
) -> None:
    email = new_email()
    await enroll(api, email, first_name="Ada")

    [welcome] = await smtp.wait_for(email, 1)

    assert welcome["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert re.fullmatch(r"<http://nurture\.example/u/[^>]+>", welcome["List-Unsubscribe"])
    text_part = body_text(welcome, "plain")
    assert "Unsubscribe from everything: http://nurture.example/u/" in text_part
    assert "Choose what you receive: http://nurture.example/p/" in text_part
    assert "Nurture Inc., 1 Example Street" in text_part or "Example Street" in text_part
    assert link(welcome, "/t/c/")  # content links are tracked redirects
    assert link(welcome, "/t/o/").endswith(".gif")  # and there is an open pixel


async def test_a_get_on_the_unsubscribe_url_changes_nothing(
    api: httpx.AsyncClient, worker: Worker, smtp: SmtpSink, sessions: async_sessionmaker
) -> None:
    email = new_email()
    lead_id = await enroll(api, email)
    [welcome] = await smtp.wait_for(email, 1)
    url = local(welcome["List-Unsubscribe"].strip("<>"))

    page = await api.get(url)

    assert page.status_code == 200
    assert '<form method="post"' in page.text
    assert (await lead_row(sessions, lead_id)).consent_status == "confirmed"


async def test_one_click_unsubscribe_works_and_repeating_it_is_harmless(
    api: httpx.AsyncClient, worker: Worker, smtp: SmtpSink, sessions: async_sessionmaker
) -> None:
    email = new_email()
    lead_id = await enroll(api, email)
    [welcome] = await smtp.wait_for(email, 1)
    url = local(link(welcome, "/u/"))  # the footer's: from everything

    first = await api.post(url, content=b"List-Unsubscribe=One-Click")
    second = await api.post(url, content=b"List-Unsubscribe=One-Click")

    assert (first.status_code, second.status_code) == (200, 200)
    assert (await lead_row(sessions, lead_id)).consent_status == "unsubscribed"
    async with sessions() as session:
        actions = (
            (
                await session.execute(
                    select(ConsentRecord.action).where(ConsentRecord.lead_id == lead_id)
                )
            )
            .scalars()
            .all()
        )
    assert actions.count("unsubscribed") == 1


async def test_no_marketing_email_reaches_an_unsubscribed_lead(
    api: httpx.AsyncClient, worker: Worker, smtp: SmtpSink, temporal_client: Client
) -> None:
    email = new_email()
    lead_id = await enroll(api, email)
    [welcome] = await smtp.wait_for(email, 1)
    await api.post(local(link(welcome, "/u/")))  # the footer's: from everything

    response = await api.post(
        "/v1/enrollments",
        json={"journey": "welcome-series", "lead": {"email": email}},
    )
    assert response.status_code == 202
    handle = temporal_client.get_workflow_handle(response.json()["workflow_id"])

    async def timeline() -> list[str]:
        entries = await handle.query(TIMELINE_QUERY, result_type=list[TimelineEntry])
        return [e.what for e in entries]

    notes = await eventually(timeline, lambda lines: any("skipped" in line for line in lines))
    assert any("lead unsubscribed" in line for line in notes)
    assert len(smtp.to(email)) == 1  # the welcome before unsubscribing, nothing after
    assert lead_id == response.json()["lead_id"]


async def test_an_unconfirmed_lead_gets_only_the_confirmation_until_it_confirms(
    api: httpx.AsyncClient, worker: Worker, smtp: SmtpSink, sessions: async_sessionmaker
) -> None:
    email = new_email()
    lead_id = await enroll(
        api, email, consent={"source": "webinar form", "text_version": "v7"}, first_name="Lin"
    )
    [confirmation] = await smtp.wait_for(email, 1)
    assert confirmation["Subject"].startswith("Please confirm")
    url = local(link(confirmation, "/c/"))

    await asyncio.sleep(1.5)
    assert len(smtp.to(email)) == 1  # the welcome is held
    assert (await api.get(url)).status_code == 200  # looking confirms nothing
    assert (await lead_row(sessions, lead_id)).consent_status == "pending"
    confirmed = await api.post(url, headers={"User-Agent": "Browser/1.0"})

    assert confirmed.status_code == 200
    mails = await smtp.wait_for(email, 2, within=30)
    assert mails[1]["Subject"].startswith("Welcome")
    async with sessions() as session:
        records = (
            (
                await session.execute(
                    select(ConsentRecord)
                    .where(ConsentRecord.lead_id == lead_id)
                    .order_by(ConsentRecord.id)
                )
            )
            .scalars()
            .all()
        )
    requested, done = records[0], records[-1]
    assert (requested.action, requested.source, requested.text_version) == (
        "requested",
        "webinar form",
        "v7",
    )
    assert (done.action, done.user_agent, done.ip) == ("confirmed", "Browser/1.0", "127.0.0.1")


async def test_a_tracked_click_redirects_to_our_target_and_counts_once(
    api: httpx.AsyncClient, worker: Worker, smtp: SmtpSink, sessions: async_sessionmaker
) -> None:
    email = new_email()
    lead_id = await enroll(api, email)
    [welcome] = await smtp.wait_for(email, 1)
    url = local(link(welcome, "/t/c/"))

    responses = [await api.get(url, headers={"User-Agent": "x" * 5000}) for _ in range(3)]
    pixel = await api.get(local(link(welcome, "/t/o/")))

    assert {r.status_code for r in responses} == {302}
    assert responses[0].headers["location"] == "http://nurture.example/guides/getting-started"
    assert pixel.status_code == 200 and pixel.headers["content-type"] == "image/gif"

    async def events() -> list[EngagementEvent]:
        async with sessions() as session:
            query = select(EngagementEvent).where(EngagementEvent.lead_id == lead_id)
            return list((await session.execute(query)).scalars().all())

    found = await eventually(
        events, lambda rows: {r.type for r in rows} >= {"email_click", "email_open"}
    )
    clicks = [e for e in found if e.type == "email_click"]
    assert len(clicks) == 1
    assert len(clicks[0].properties["user_agent"]) <= 200  # hostile input, capped


OPEN_REDIRECTS = [
    "//evil.example",
    "/\\evil.example",
    "%2f%2fevil.example",
    "javascript:alert(1)",
    "https://evil.example",
    "http:evil.example",
    "..%2f..%2fevil.example",
    "%0d%0aLocation:%20https://evil.example",
]


@pytest.mark.parametrize("payload", OPEN_REDIRECTS)
async def test_open_redirect_payloads_are_refused(api: httpx.AsyncClient, payload: str) -> None:
    for url in (f"/t/c/{payload}", f"/t/c/x?url={payload}", f"/t/c/{payload}?next={payload}"):
        response = await api.get(url)
        assert 400 <= response.status_code < 500, url
        assert "evil" not in response.headers.get("location", "")


async def test_forged_tampered_and_truncated_tokens_are_refused(
    api: httpx.AsyncClient, worker: Worker, smtp: SmtpSink
) -> None:
    email = new_email()
    await enroll(api, email)
    [welcome] = await smtp.wait_for(email, 1)
    good = link(welcome, "/t/c/").rsplit("/", 1)[1]
    payload = base64.urlsafe_b64encode(json.dumps([1, "pricing"]).encode()).decode().rstrip("=")
    tampered = good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB")

    for token in (good[:-5], tampered, f"{payload}.forgedsignature", "", "x" * 400, "%00"):
        for prefix in ("/t/c/", "/t/o/", "/u/", "/c/"):
            response = await (api.post if prefix in ("/u/", "/c/") else api.get)(prefix + token)
            assert 400 <= response.status_code < 500, (prefix, token)


async def test_template_injection_in_lead_data_renders_harmless(
    api: httpx.AsyncClient, worker: Worker, smtp: SmtpSink
) -> None:
    email = new_email()
    await enroll(
        api,
        email,
        first_name="{{ 7*7 }}<img src=x onerror=alert(1)>",
        company="{% for x in ().__class__.__base__.__subclasses__() %}{{ x }}{% endfor %}",
    )

    [welcome] = await smtp.wait_for(email, 1)

    html = body_text(welcome, "html")
    assert "{{ 7*7 }}" in welcome["Subject"] and "49" not in welcome["Subject"]
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "__subclasses__()" in html and "<class" not in html


async def test_erasure_leaves_no_trace_of_the_address(
    api: httpx.AsyncClient,
    worker: Worker,
    smtp: SmtpSink,
    sessions: async_sessionmaker,
    temporal_client: Client,
) -> None:
    email = f"erase-me-{uuid.uuid4().hex[:8]}@erasable.example"
    lead_id = await enroll(api, email, first_name="Eve", last_name="Erasable")
    [welcome] = await smtp.wait_for(email, 1)
    await api.get(local(link(welcome, "/t/c/")), headers={"User-Agent": f"UA {email}"})
    await api.post(
        "/v1/events",
        json={"lead_id": lead_id, "type": "page_view", "event_id": "pv-1",
              "properties": {"url": f"https://nurture.example/?email={email}"}},
    )  # fmt: skip
    await eventually(lambda: lead_row(sessions, lead_id), lambda row: row.behaviour_score > 0)
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}

    marketing_try = await api.delete(f"/v1/leads/{lead_id}")
    erased = await api.delete(f"/v1/leads/{lead_id}", headers=admin)
    again = await api.delete(f"/v1/leads/{lead_id}", headers=admin)

    assert marketing_try.status_code == 403
    assert erased.status_code == 200, erased.text
    assert again.status_code == 200
    assert (await api.get(f"/v1/leads/{lead_id}")).status_code == 404
    async with sessions() as session:
        workflow_ids = (
            (
                await session.execute(
                    select(Enrollment.workflow_id).where(Enrollment.lead_id == lead_id)
                )
            )
            .scalars()
            .all()
        )
    assert await tables_holding(sessions, email, "Erasable") == []
    for workflow_id in [*workflow_ids, lead_workflow_id(lead_id)]:
        # Ended by the erasure, or by itself on reading the erased lead first (a rescore
        # under way when the rows were cleared): `workflows_ended` counts only the former.
        description = await temporal_client.get_workflow_handle(workflow_id).describe()
        assert description.status != WorkflowExecutionStatus.RUNNING, workflow_id
        assert not await history_holds(temporal_client, workflow_id, email, "Erasable")


async def test_a_permanent_smtp_failure_bounces_and_suppresses_the_address(
    api: httpx.AsyncClient, worker: Worker, sessions: async_sessionmaker, temporal_client: Client
) -> None:
    email = f"bounce-{uuid.uuid4().hex[:8]}@example.com"  # the sink answers 550 for these
    lead_id = await enroll(api, email)

    row = await eventually(
        lambda: lead_row(sessions, lead_id), lambda r: r.consent_status == "bounced"
    )

    assert row.consent_status == "bounced"
    async with sessions() as session:
        from db.models import OutboxEmail

        statuses = (
            (
                await session.execute(
                    select(OutboxEmail.status).where(OutboxEmail.lead_id == lead_id)
                )
            )
            .scalars()
            .all()
        )
        actions = (
            (
                await session.execute(
                    select(ConsentRecord.action).where(ConsentRecord.lead_id == lead_id)
                )
            )
            .scalars()
            .all()
        )
    assert statuses == ["bounced"] and "bounced" in actions


async def test_a_template_preview_renders_for_a_lead_with_plain_links(
    api: httpx.AsyncClient, worker: Worker, smtp: SmtpSink
) -> None:
    email = new_email()
    lead_id = await enroll(api, email, first_name="Grace", company="Hopper Labs")

    response = await api.get(f"/v1/templates/welcome/preview?lead_id={lead_id}")
    sample = await api.get("/v1/templates/wp_delivery/preview?persona=practitioner")
    missing = await api.get("/v1/templates/no_such_template/preview")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["subject"] == "Welcome to Nurture Test, Grace"
    assert "Hopper Labs" in body["html"] and "/t/c/" not in body["html"]
    assert sample.status_code == 200 and "Pat" in sample.json()["text"]
    assert missing.status_code == 404
    assert missing.json()["detail"][0]["loc"] == ["path", "name"]


async def test_a_template_preview_puts_named_links_on_the_website(
    settings: Settings, sessions: async_sessionmaker
) -> None:
    on_a_website = settings.model_copy(update={"website_base_url": "https://www.example.com"})

    preview = await preview_template(on_a_website, sessions, "pricing_follow_up")

    assert 'href="https://www.example.com/pricing"' in preview.html
    assert 'href="https://www.example.com/demo"' in preview.html
    assert 'href="http://nurture.example/preferences"' in preview.html  # Nurture's own page
