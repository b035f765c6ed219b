"""Scoring, MQL handover and sales feedback on the real stack: API → Temporal dev server →
worker → PostgreSQL → SMTP sink."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.worker import Worker

from db.models import Account, CrmHandover, SalesFeedbackRecord
from starter.dev.smtp_sink import SmtpSink
from starter.services.crm_signatures import SIGNATURE_HEADER, sign
from tests.conftest import CRM_SECRET, SALES_KEY, body_text
from tests.lifecycle_helpers import decider, eventually, handovers_of, lead_row
from workflows.contracts import lead_workflow_id

KIM = "kim@sales.nurture.example"


async def enroll(api: httpx.AsyncClient, lead: dict[str, object]) -> str:
    response = await api.post(
        "/v1/enrollments",
        json={"journey": "welcome", "lead": lead, "consent": {"source": "test", "confirmed": True}},
    )
    assert response.status_code == 202, response.text
    return str(response.json()["lead_id"])


async def engage(api: httpx.AsyncClient, lead_id: str, *kinds: str) -> None:
    for kind in kinds:
        url = "https://nurture.example/pricing" if kind == "page_view" else None
        response = await api.post(
            "/v1/events",
            json={
                "lead_id": lead_id,
                "type": kind,
                "event_id": f"{kind}-{uuid.uuid4().hex[:8]}",
                "properties": {"url": url} if url else {},
            },
        )
        assert response.status_code == 202, response.text


async def make_mql(api: httpx.AsyncClient, sessions: async_sessionmaker, lead: dict) -> str:
    lead_id = await enroll(api, lead)
    await engage(api, lead_id, "demo_request")
    await eventually(lambda: handovers_of(sessions, lead_id), lambda rows: len(rows) == 1)
    await eventually(lambda: lead_row(sessions, lead_id), lambda row: row.lifecycle_stage == "mql")
    return lead_id


def notifications_for(smtp: SmtpSink, lead: dict, rep: str = KIM) -> list:
    """The assignment notices about `lead` (the mql-alert journey's alert is another)."""
    return [
        m for m in smtp.to(rep)
        if str(lead["first_name"]) in m["Subject"] and m["Subject"].startswith("New MQL")
    ]  # fmt: skip


def feedback(api: httpx.AsyncClient, lead_id: str, body: dict) -> Awaitable[httpx.Response]:
    return api.post(
        f"/v1/leads/{lead_id}/sales-feedback",
        json=body,
        headers={"Authorization": f"Bearer {SALES_KEY}"},
    )


async def test_a_lead_that_crosses_the_threshold_is_handed_over_once_and_its_owner_told_why(
    api: httpx.AsyncClient, worker: Worker, sessions: async_sessionmaker, smtp: SmtpSink
) -> None:
    lead = decider()
    lead_id = await enroll(api, lead)
    await engage(api, lead_id, "email_click", "page_view")  # behaviour 15: not yet
    await eventually(lambda: lead_row(sessions, lead_id), lambda row: row.behaviour_score == 15)
    assert await handovers_of(sessions, lead_id) == []

    await engage(api, lead_id, "demo_request", "page_view", "download")
    [handover] = await eventually(
        lambda: handovers_of(sessions, lead_id), lambda rows: len(rows) == 1
    )
    await engage(api, lead_id, "demo_request", "webinar_attended")  # still an MQL: no second

    await eventually(lambda: _notified(smtp, lead), lambda mails: len(mails) == 1, within=10)
    row = await eventually(lambda: lead_row(sessions, lead_id), lambda r: r.score > 100)
    assert len(await handovers_of(sessions, lead_id)) == 1
    assert (handover.owner, handover.routing_rule, handover.cycle) == ("kim", "territory", 1)
    assert (row.lifecycle_stage, row.owner, row.mql_cycles) == ("mql", "kim", 1)
    [mail] = notifications_for(smtp, lead)
    text = mail.get_body(("plain",)).get_content()
    assert "VP or head title" in text and "demo request" in text and lead["email"] in text


async def _notified(smtp: SmtpSink, lead: dict) -> list:
    return notifications_for(smtp, lead)


async def test_the_score_explanation_adds_up_to_the_score(
    api: httpx.AsyncClient, worker: Worker, sessions: async_sessionmaker
) -> None:
    lead_id = await enroll(api, decider(title="Director of Marketing"))
    await engage(api, lead_id, "email_open", "email_open", "email_click", "page_view")

    response = await api.get(f"/v1/leads/{lead_id}/score")

    assert response.status_code == 200, response.text
    score = response.json()
    assert sum(c["points"] for c in score["contributions"]) == score["total"]
    assert score["fit"] + score["behaviour"] == score["total"]
    assert {"director title", "email open", "pricing or demo page visit"} <= {
        c["label"] for c in score["contributions"]
    }
    lead = (await api.get(f"/v1/leads/{lead_id}")).json()
    assert lead["score"]["total"] == score["total"]


async def test_the_temporal_ui_can_list_mqls_by_score(
    api: httpx.AsyncClient, worker: Worker, sessions: async_sessionmaker, temporal_client: Client
) -> None:
    lead_id = await make_mql(api, sessions, decider())
    query = (
        f"WorkflowId = '{lead_workflow_id(lead_id)}' "
        "AND NurtureStage = 'mql' AND NurtureScore > 80 AND NurtureOwner = 'kim'"
    )

    async def listed() -> list:
        return [w async for w in temporal_client.list_workflows(query)]

    assert len(await eventually(listed, lambda found: len(found) == 1)) == 1


_INPUT_EVENTS = frozenset({
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ADMITTED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED,
})  # fmt: skip


async def test_feedback_that_does_not_fit_the_stage_is_409_and_leaves_history_unchanged(
    api: httpx.AsyncClient, worker: Worker, sessions: async_sessionmaker, temporal_client: Client
) -> None:
    lead_id = await enroll(api, decider())
    handle = temporal_client.get_workflow_handle(lead_workflow_id(lead_id))

    async def inputs() -> list[int]:
        """The events input from outside leaves in the history (signals, updates); the
        workflow's own work (its rescore may still be under way) is not compared."""
        history = await handle.fetch_history()
        return [e.event_id for e in history.events if e.event_type in _INPUT_EVENTS]

    await eventually(lambda: lead_row(sessions, lead_id), lambda row: row.scored_at is not None)
    before = await inputs()

    response = await feedback(api, lead_id, {"outcome": "reject", "reason": "no-budget"})

    assert response.status_code == 409, response.text
    body = response.json()
    assert body["current_stage"] == "lead"
    assert body["detail"][0]["loc"] == ["body", "outcome"]
    assert "lead" in body["detail"][0]["msg"]
    assert await inputs() == before
    async with sessions() as session:
        query = select(SalesFeedbackRecord).where(SalesFeedbackRecord.lead_id == lead_id)
        assert (await session.execute(query)).first() is None


async def test_a_rejection_without_a_reason_is_422_naming_the_field(
    api: httpx.AsyncClient, worker: Worker, sessions: async_sessionmaker
) -> None:
    lead_id = await enroll(api, decider())

    response = await feedback(api, lead_id, {"outcome": "reject"})

    assert response.status_code == 422
    assert "reason" in response.text


async def test_marketing_keys_cannot_give_sales_feedback(
    api: httpx.AsyncClient, worker: Worker, sessions: async_sessionmaker
) -> None:
    lead_id = await enroll(api, decider())

    response = await api.post(f"/v1/leads/{lead_id}/sales-feedback", json={"outcome": "accept"})

    assert response.status_code == 403


async def test_accepted_and_won_leads_become_customers_on_the_post_purchase_track(
    api: httpx.AsyncClient, worker: Worker, sessions: async_sessionmaker, smtp: SmtpSink
) -> None:
    lead = decider()
    lead_id = await make_mql(api, sessions, lead)

    stages = []
    for outcome in ("accept", "qualify", "qualify", "won"):
        response = await feedback(api, lead_id, {"outcome": outcome, "rep": "kim"})
        assert response.status_code == 200, response.text
        stages.append(response.json()["stage"])

    assert stages == ["sal", "sql", "opportunity", "customer"]
    onboarding = await smtp.wait_for(str(lead["email"]), 2)  # welcome, then onboarding
    assert any("Welcome aboard" in m["Subject"] for m in onboarding)
    [handover] = await handovers_of(sessions, lead_id)
    assert handover.status == "won"
    transitions = (await api.get(f"/v1/leads/{lead_id}")).json()["stage_transitions"]
    assert [t["to_stage"] for t in transitions] == ["mql", "sal", "sql", "opportunity", "customer"]
    assert transitions[1]["actor"] == "sales"  # the manager's key gave it, for kim


async def test_a_rejected_lead_goes_back_to_nurture_and_is_held_from_mql(
    api: httpx.AsyncClient, worker: Worker, sessions: async_sessionmaker, smtp: SmtpSink
) -> None:
    lead = decider()
    lead_id = await make_mql(api, sessions, lead)

    response = await feedback(
        api, lead_id, {"outcome": "reject", "reason": "no-budget", "rep": "kim"}
    )

    assert response.status_code == 200, response.text
    assert response.json()["stage"] == "recycled"
    mails = await smtp.wait_for(str(lead["email"]), 2)  # welcome, then the check-in
    assert "Picking up where we left off" in mails[-1]["Subject"]
    row = await lead_row(sessions, lead_id)
    assert (row.rejections, row.behaviour_score) == (1, 0)  # the model resets behaviour
    await engage(api, lead_id, "demo_request", "page_view", "page_view")  # keen again …
    await eventually(lambda: lead_row(sessions, lead_id), lambda r: r.behaviour_score >= 30)
    row = await lead_row(sessions, lead_id)
    assert row.lifecycle_stage == "recycled"  # … but within the cool-down
    [handover] = await handovers_of(sessions, lead_id)
    assert handover.status == "rejected"


async def test_a_signed_crm_status_change_becomes_sales_feedback(
    api: httpx.AsyncClient, worker: Worker, sessions: async_sessionmaker
) -> None:
    lead_id = await make_mql(api, sessions, decider())
    body = json.dumps({"lead_id": lead_id, "status": "Unqualified", "rep": "kim"}).encode()

    unsigned = await api.post("/v1/crm/webhook", content=body)
    forged = await api.post(
        "/v1/crm/webhook", content=body, headers={SIGNATURE_HEADER: sign(body, b"not-the-secret")}
    )
    signed = await api.post(
        "/v1/crm/webhook", content=body, headers={SIGNATURE_HEADER: sign(body, CRM_SECRET.encode())}
    )

    assert (unsigned.status_code, forged.status_code) == (401, 401)
    assert signed.status_code == 202, signed.text
    assert signed.json()["outcome"] == "reject"
    row = await eventually(
        lambda: lead_row(sessions, lead_id), lambda r: r.lifecycle_stage == "recycled"
    )
    assert row.rejections == 1


async def test_an_unknown_crm_status_is_422_naming_the_field(
    api: httpx.AsyncClient, worker: Worker, sessions: async_sessionmaker
) -> None:
    lead_id = await enroll(api, decider())
    body = json.dumps({"lead_id": lead_id, "status": "Sleeping"}).encode()

    response = await api.post(
        "/v1/crm/webhook", content=body, headers={SIGNATURE_HEADER: sign(body, CRM_SECRET.encode())}
    )

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "status"]


async def test_an_account_qualifies_once_when_its_contacts_engage_enough(
    api: httpx.AsyncClient, worker: Worker, sessions: async_sessionmaker, smtp: SmtpSink
) -> None:
    domain = f"globex-{uuid.uuid4().hex[:8]}.example"
    first, second = decider(domain, country="FR"), decider(domain, country="FR")
    first_id = await enroll(api, first)
    second_id = await enroll(api, second)
    await engage(api, first_id, "page_view", "page_view", "download", "download")  # 40
    await engage(api, second_id, "webinar_attended", "email_click")  # 20: together 60
    await eventually(lambda: lead_row(sessions, second_id), lambda r: r.behaviour_score == 20)

    async def account() -> Account:
        async with sessions() as session:
            row = (
                await session.execute(select(Account).where(Account.domain == domain))
            ).scalar_one()
            return row

    assert (await account()).qualified_at is None
    await engage(api, second_id, "download", "download", "form_submit", "form_submit")  # +40
    qualified = await eventually(account, lambda a: a.qualified_at is not None)
    await engage(api, first_id, "webinar_attended")  # more engagement: still once

    async def account_handovers() -> list[CrmHandover]:
        async with sessions() as session:
            query = select(CrmHandover).where(
                CrmHandover.account_id == qualified.id, CrmHandover.kind == "account"
            )
            return list((await session.execute(query)).scalars().all())

    [handover] = await eventually(account_handovers, lambda rows: len(rows) == 1)
    await eventually(lambda: lead_row(sessions, first_id), lambda r: r.behaviour_score == 55)
    assert len(await account_handovers()) == 1
    assert qualified.score >= 100 and handover.owner is not None
    owner_mail = f"{handover.owner}@sales.nurture.example"
    mails = await eventually(
        lambda: _account_mails(smtp, owner_mail, domain), lambda found: len(found) == 1
    )
    assert len(mails) == 1


async def _account_mails(smtp: SmtpSink, address: str, domain: str) -> list:
    return [
        m
        for m in smtp.to(address)
        if "Account qualified" in m["Subject"] and domain in body_text(m, "plain")
    ]
