"""The marketer's and the sales rep's interface on the real stack: bulk and form
enrollment, lead lists, the timeline, rep scoping, analytics and the CSV export."""

from __future__ import annotations

import csv
import io
import uuid
import xml.etree.ElementTree as ET
from typing import cast

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.client import Client
from temporalio.worker import Worker

from db.models import ConsentRecord, EngagementEvent, Enrollment, EnrollmentJobRow
from tests.conftest import REP_KEYS
from tests.lifecycle_helpers import decider, eventually
from tests.test_sales_loop import make_mql
from workflows.contracts import journey_workflow_id


async def finished(api: httpx.AsyncClient, job: dict) -> dict:
    async def poll() -> dict:
        return (await api.get(f"/v1/enrollment-jobs/{job['job_id']}")).json()

    return await eventually(poll, lambda j: j["status"] == "done", within=60)


def _domain() -> str:
    return f"bulk-{uuid.uuid4().hex[:8]}.example"


async def test_a_csv_upload_enrolls_the_valid_rows_and_reports_each_bad_row_by_line(
    api: httpx.AsyncClient, worker: Worker, sessions: async_sessionmaker
) -> None:
    domain = _domain()
    text = (
        "email,first_name,company_size,external_id,campaign\n"
        f"ada@{domain},Ada,250,crm-{domain}-1,fair\n"
        "not-an-email,Bob,10,,\n"
        f"grace@{domain},Grace,lots,,\n"
        f"alan@{domain},Alan,,crm-{domain}-3,\n"
    )
    response = await api.post(
        "/v1/enrollment-jobs/csv",
        params={"journey": "welcome", "consent_source": "fair", "consent_confirmed": "true"},
        content=text,
        headers={"Content-Type": "text/csv"},
    )
    assert response.status_code == 202, response.text

    job = await finished(api, response.json())

    assert (job["total_rows"], job["valid_rows"], job["enrolled"]) == (4, 2, 2)
    assert [(e["line"], e["field"]) for e in job["errors"]] == [(3, "email"), (4, "company_size")]
    assert job["processed_rows"] == 4 and job["failed_rows"] == 2
    async with sessions() as session:
        staged = (await session.execute(select(EnrollmentJobRow).where(
            EnrollmentJobRow.job_id == job["job_id"]))).scalars().all()  # fmt: skip
    assert staged == []  # personal data leaves the staging table once enrolled


async def test_uploading_the_same_leads_again_enrolls_nobody_twice(
    api: httpx.AsyncClient, worker: Worker
) -> None:
    domain = _domain()
    leads = [{"email": f"p{i}@{domain}", "external_id": f"x-{domain}-{i}"} for i in range(3)]
    body = {"journey": "welcome", "leads": leads, "consent": {"source": "t", "confirmed": True}}
    first = await finished(api, (await api.post("/v1/enrollment-jobs", json=body)).json())
    # The same people again, one with a changed email: the external id finds them.
    leads[0]["email"] = f"renamed@{domain}"
    second = await finished(api, (await api.post("/v1/enrollment-jobs", json=body)).json())

    assert (first["enrolled"], first["already_enrolled"]) == (3, 0)
    assert (second["enrolled"], second["already_enrolled"]) == (0, 3)
    response = await api.get("/v1/leads", params={"journey": "welcome", "limit": 500})
    assert response.status_code == 200, response.text
    page = response.json()
    mine = [lead for lead in page["items"] if lead["email"].endswith(domain)]
    assert len({lead["id"] for lead in mine}) <= 3


async def test_a_repeated_idempotency_key_returns_the_same_job(
    api: httpx.AsyncClient, worker: Worker
) -> None:
    body = {"journey": "welcome", "leads": [{"email": f"k@{_domain()}"}]}
    headers = {"Idempotency-Key": uuid.uuid4().hex}

    first = await api.post("/v1/enrollment-jobs", json=body, headers=headers)
    again = await api.post("/v1/enrollment-jobs", json=body, headers=headers)

    assert first.json()["job_id"] == again.json()["job_id"]


async def test_a_whitepaper_form_records_consent_counts_a_download_and_starts_the_nurture(
    api: httpx.AsyncClient, worker: Worker, sessions: async_sessionmaker, temporal_client: Client
) -> None:
    email = f"reader@{_domain()}"
    body = {
        "submission_id": uuid.uuid4().hex,
        "lead": {"email": email, "first_name": "Rita", "title": "CTO"},
        "consent": {"marketing": True, "text_version": "2026-11"},
        "ip": "203.0.113.7",
        "user_agent": "Mozilla/5.0 (test)",
        "page_url": "https://example.com/whitepapers/b2b",
    }

    response = await api.post("/v1/forms/whitepaper-download/submissions", json=body)

    assert response.status_code == 202, response.text
    result = response.json()
    assert (result["journey"], result["status"], result["consent_status"]) == (
        "whitepaper-nurture", "enrolled", "pending",
    )  # fmt: skip
    lead_id = result["lead_id"]
    async with sessions() as session:
        consent = (await session.execute(select(ConsentRecord).where(
            ConsentRecord.lead_id == lead_id))).scalars().one()  # fmt: skip
        event = (await session.execute(select(EngagementEvent).where(
            EngagementEvent.lead_id == lead_id))).scalars().one()  # fmt: skip
    assert (consent.action, consent.source, consent.ip, consent.text_version) == (
        "requested", "form:whitepaper-download", "203.0.113.7", "2026-11",
    )  # fmt: skip
    assert consent.user_agent == "Mozilla/5.0 (test)"
    assert (event.type, event.properties["content"]) == ("download", "whitepaper")
    handle = temporal_client.get_workflow_handle(journey_workflow_id("whitepaper-nurture", lead_id))
    assert (await handle.describe()).status is not None
    again = await api.post("/v1/forms/whitepaper-download/submissions", json=body)
    assert again.json()["status"] == "already_enrolled"


async def test_a_form_without_marketing_consent_is_refused_naming_the_field(
    api: httpx.AsyncClient, worker: Worker
) -> None:
    response = await api.post(
        "/v1/forms/newsletter/submissions",
        json={"lead": {"email": f"n@{_domain()}"}, "consent": {"marketing": False}},
    )

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "consent", "marketing"]


async def test_an_unknown_form_is_a_404_listing_the_known_forms(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/v1/forms/nope/submissions",
        json={"lead": {"email": "x@example.com"}, "consent": {"marketing": True}},
    )

    assert response.status_code == 404
    assert "whitepaper-download" in response.json()["detail"][0]["msg"]


async def test_leads_are_listed_by_filter_a_page_at_a_time_without_gaps_or_repeats(
    api: httpx.AsyncClient, worker: Worker
) -> None:
    domain = _domain()
    leads = [{"email": f"l{i}@{domain}", "company": "Pager"} for i in range(7)]
    job = await finished(api, (await api.post(
        "/v1/enrollment-jobs", json={"journey": "welcome", "leads": leads})).json())  # fmt: skip
    assert job["enrolled"] == 7
    first = (await api.get("/v1/leads", params={"journey": "welcome", "limit": 500})).json()
    account = next(i["account_id"] for i in first["items"] if i["email"].endswith(domain))

    seen, cursor = [], None
    while True:
        params = {"account_id": account, "limit": 3, "sort": "created_at"}
        page = (
            await api.get("/v1/leads", params={**params, **({"cursor": cursor} if cursor else {})})
        ).json()
        seen += [item["email"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert sorted(seen) == sorted(lead["email"] for lead in leads)
    assert len(seen) == 7


async def test_list_filters_and_sorts_are_allow_listed(api: httpx.AsyncClient) -> None:
    cases: list[tuple[dict[str, str | int], str]] = [
        ({"sort": "email; drop table leads"}, "sort"),
        ({"stage": "boss"}, "stage"),
        ({"score_min": 10, "score_max": 5}, "score_min"),
        ({"cursor": "bm90LWEtY3Vyc29y"}, "cursor"),
        ({"colour": "red"}, "colour"),
    ]
    for params, field in cases:
        response = await api.get("/v1/leads", params=params)
        assert response.status_code == 422, (params, response.text)
        assert field in str(response.json()["detail"][0]["loc"]), response.text


async def test_a_sales_rep_sees_only_their_own_leads(
    api: httpx.AsyncClient, api_url: str, worker: Worker, sessions: async_sessionmaker
) -> None:
    lead_id = await make_mql(api, sessions, decider())  # routed to kim (territory DE)

    async with httpx.AsyncClient(base_url=api_url) as client:
        kim = {"Authorization": f"Bearer {REP_KEYS['kim']}"}
        alex = {"Authorization": f"Bearer {REP_KEYS['alex']}"}
        kims = (await client.get("/v1/leads", params={"limit": 500}, headers=kim)).json()
        alexs = (await client.get("/v1/leads", params={"limit": 500}, headers=alex)).json()
        own = await client.get(f"/v1/leads/{lead_id}", headers=kim)
        other = await client.get(f"/v1/leads/{lead_id}", headers=alex)
        meddling = await client.post(
            f"/v1/leads/{lead_id}/sales-feedback",
            json={"outcome": "reject", "reason": "not mine"},
            headers=alex,
        )
        accepted = await client.post(
            f"/v1/leads/{lead_id}/sales-feedback", json={"outcome": "accept"}, headers=kim
        )

    assert lead_id in {lead["id"] for lead in kims["items"]}
    assert all(lead["owner"] == "kim" for lead in kims["items"])
    assert lead_id not in {lead["id"] for lead in alexs["items"]}
    assert own.status_code == 200
    assert other.status_code == 403 and meddling.status_code == 403
    assert accepted.status_code == 200 and accepted.json()["stage"] == "sal"


async def test_the_lead_timeline_puts_emails_events_scores_and_stages_in_order(
    api: httpx.AsyncClient, worker: Worker, sessions: async_sessionmaker
) -> None:
    lead_id = await make_mql(api, sessions, decider())

    async def timeline() -> list[dict]:
        return (await api.get(f"/v1/leads/{lead_id}")).json()["timeline"]

    entries = await eventually(
        timeline,
        lambda t: {"email", "event", "score", "stage", "handover"} <= {e["kind"] for e in t},
    )
    assert [e["at"] for e in entries] == sorted(e["at"] for e in entries)
    assert any(e["kind"] == "stage" and e["summary"].endswith("→ mql") for e in entries)
    assert any(e["kind"] == "consent" for e in entries)


async def test_the_funnel_counts_real_leads_and_draws_them(
    api: httpx.AsyncClient, worker: Worker, sessions: async_sessionmaker
) -> None:
    lead_id = await make_mql(api, sessions, decider())
    before = (await api.get("/v1/analytics/funnel")).json()

    report = (await api.get("/v1/analytics/funnel", params={"interval": "week"})).json()
    svg = await api.get("/v1/analytics/funnel.svg")

    stages = {s["stage"]: s for s in report["stages"]}
    assert stages["mql"]["reached"] >= 1 and stages["lead"]["reached"] >= stages["mql"]["reached"]
    assert sum(p["leads"] for p in report["periods"]) == report["leads"] == before["leads"]
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    bars = {
        g.get("data-stage"): int(cast("str", g.get("data-count")))
        for g in ET.fromstring(svg.text).iter("{http://www.w3.org/2000/svg}g")
    }
    assert bars["mql"] == stages["mql"]["reached"]
    assert lead_id


async def test_journey_statistics_count_sent_emails_per_step(
    api: httpx.AsyncClient, worker: Worker, sessions: async_sessionmaker
) -> None:
    await make_mql(api, sessions, decider())

    stats = (await api.get("/v1/analytics/journeys/welcome")).json()
    missing = await api.get("/v1/analytics/journeys/no-such-journey")

    assert stats["steps"][0]["sent"] >= 1
    assert stats["steps"][0]["converted"] >= 1
    assert missing.status_code == 404


async def test_the_csv_export_neutralises_formulas_in_lead_data(
    api: httpx.AsyncClient, worker: Worker
) -> None:
    domain = _domain()
    leads = [{"email": f"evil@{domain}", "first_name": "=HYPERLINK(\"http://x\")",
              "company": "@SUM(A1)", "last_name": "-2+3"}]  # fmt: skip
    await finished(api, (await api.post(
        "/v1/enrollment-jobs", json={"journey": "welcome", "leads": leads})).json())  # fmt: skip
    listing = (await api.get("/v1/leads", params={"journey": "welcome", "limit": 500})).json()
    account = next(i["account_id"] for i in listing["items"] if i["email"].endswith(domain))

    response = await api.get("/v1/exports/leads.csv", params={"account_id": account})

    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [(r["first_name"], r["company"], r["last_name"]) for r in rows] == [
        ('\'=HYPERLINK("http://x")', "'@SUM(A1)", "'-2+3")
    ]


async def test_the_journey_catalogue_lists_every_deployed_journey(api: httpx.AsyncClient) -> None:
    names = {j["name"] for j in (await api.get("/v1/journeys")).json()}

    assert {"welcome", "whitepaper-nurture", "recycled-nurture"} <= names


async def test_an_enrollment_row_exists_for_every_bulk_enrolled_lead(
    api: httpx.AsyncClient, worker: Worker, sessions: async_sessionmaker
) -> None:
    domain = _domain()
    leads = [{"email": f"e{i}@{domain}"} for i in range(5)]
    job = await finished(api, (await api.post(
        "/v1/enrollment-jobs", json={"journey": "welcome", "leads": leads})).json())  # fmt: skip

    async with sessions() as session:
        rows = (await session.execute(select(Enrollment).where(
            Enrollment.journey == "welcome"))).scalars().all()  # fmt: skip
    assert job["enrolled"] == 5
    assert len(rows) >= 5
