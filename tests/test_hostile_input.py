"""Hostile and careless input on the real API (issue 19): nothing an outsider sends makes
the server read a huge body unauthenticated, answer 500, echo huge values, or let a key be
guessed at full speed."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.worker import Worker

from db.models import EngagementEvent
from starter.api.request_guard import FAILED_AUTH_LIMIT
from starter.dev.smtp_sink import SmtpSink
from starter.services.crm_signatures import SIGNATURE_HEADER, sign
from tests.conftest import ADMIN_KEY, CRM_SECRET, MARKETING_KEY, new_email
from tests.test_email_consent import enroll, link, local

MIB = 1024 * 1024


async def chunks(total: int, size: int = MIB) -> AsyncIterator[bytes]:
    """A streamed body (no Content-Length): the server can only count as it reads."""
    sent = 0
    while sent < total:
        yield b" " * size
        sent += size


async def test_an_unauthenticated_50_mb_body_is_refused_before_it_is_read(api_url: str) -> None:
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as client:
        started = time.monotonic()
        response = await client.post(
            "/v1/enrollments",
            content=chunks(50 * MIB),
            headers={"Content-Type": "application/json"},
        )

    assert response.status_code == 401
    assert time.monotonic() - started < 5


async def test_a_body_over_the_limit_is_413_by_its_declared_length(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/v1/enrollments",
        content=b"{" + b" " * (2 * MIB) + b"}",
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code == 413
    assert response.json()["detail"][0]["loc"] == ["body"]


async def test_a_streamed_body_over_the_limit_is_413_without_reading_the_rest(
    api: httpx.AsyncClient,
) -> None:
    response = await api.post(
        "/v1/enrollment-jobs/csv?journey=welcome",
        content=chunks(200 * MIB),
        headers={"Content-Type": "text/csv"},
    )

    assert response.status_code == 413


@pytest.mark.parametrize(
    "header",
    [
        f"t={int(time.time())},v1=é",
        "t=" + "9" * 400 + ",v1=" + "0" * 64,
        "t=,v1=",
        "v1=" + "0" * 64,
        f"t={int(time.time())},v1=" + "0" * 64 + ",v1=zz",
        "t=1,v1=" + "a" * 10_000,
    ],
)
async def test_a_malformed_webhook_signature_is_401(api_url: str, header: str) -> None:
    body = json.dumps({"lead_id": str(uuid.uuid4()), "status": "Working"}).encode()
    async with httpx.AsyncClient(base_url=api_url) as client:
        response = await client.post(
            "/v1/crm/webhook",
            content=body,
            # bytes on purpose: httpx sends a str header value only if it is ASCII ("é").
            headers={SIGNATURE_HEADER: header.encode()},  # type: ignore[arg-type]
        )

    assert response.status_code == 401, response.text
    assert response.json()["detail"][0]["loc"] == ["header", "x-nurture-signature"]


async def test_a_replayed_signed_webhook_is_refused(
    api: httpx.AsyncClient, worker: Worker, smtp: SmtpSink
) -> None:
    lead_id = await enroll(api, new_email())
    body = json.dumps({"lead_id": lead_id, "status": "Working"}).encode()
    now = int(time.time())
    headers = {SIGNATURE_HEADER: sign(body, CRM_SECRET.encode(), timestamp=now)}

    first = await api.post("/v1/crm/webhook", content=body, headers=headers)
    replay = await api.post("/v1/crm/webhook", content=body, headers=headers)
    fresh = await api.post(
        "/v1/crm/webhook",
        content=body,
        headers={SIGNATURE_HEADER: sign(body, CRM_SECRET.encode(), timestamp=now - 1)},
    )

    assert first.status_code == 202, first.text
    assert replay.status_code == 409
    assert fresh.status_code == 202  # a CRM's new signature for the same change is taken


async def test_an_infinite_company_size_is_a_422_naming_the_field(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/v1/enrollments",
        content=b'{"journey": "welcome", '
        b'"lead": {"email": "x@example.com", "company_size": 1e999}}',
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "lead", "company_size"] and "input" not in error


async def test_a_422_never_echoes_a_huge_value(api: httpx.AsyncClient) -> None:
    huge = "x" * (900 * 1024)
    response = await api.post(
        "/v1/enrollments",
        json={"journey": "welcome", "lead": {"email": "x@example.com", "first_name": huge}},
    )

    assert response.status_code == 422
    assert len(response.content) < 2000


@pytest.mark.parametrize("value", [10**40, True, -(2**40), "12", None])
async def test_a_forged_score_cursor_is_a_422_naming_the_cursor(
    api: httpx.AsyncClient, value: object
) -> None:
    raw = json.dumps(["-score", value, str(uuid.uuid4())]).encode()
    cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")

    response = await api.get("/v1/leads", params={"sort": "-score", "cursor": cursor})

    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["query", "cursor"]


@pytest.mark.parametrize(
    "template", ["notifications/mql_assigned", "notifications/sla_reminder",
                 "notifications/account_qualified", "consent/confirm", "consent/reminder"],
)  # fmt: skip
async def test_notification_and_consent_templates_preview_with_samples(
    api: httpx.AsyncClient, template: str
) -> None:
    response = await api.get(f"/v1/templates/{template}/preview")

    assert response.status_code == 200, response.text
    assert response.json()["subject"]


async def test_tracking_links_of_an_erased_lead_answer_quietly(
    api: httpx.AsyncClient, worker: Worker, smtp: SmtpSink, caplog: pytest.LogCaptureFixture
) -> None:
    email = new_email()
    lead_id = await enroll(api, email)
    [welcome] = await smtp.wait_for(email, 1)
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    assert (await api.delete(f"/v1/leads/{lead_id}", headers=admin)).status_code == 200

    click = await api.get(local(link(welcome, "/t/c/")))
    pixel = await api.get(local(link(welcome, "/t/o/")))
    await asyncio.sleep(0.5)  # the recording runs after the answer

    # Erasure blanked the link's stored target (it may hold personal data): the normal
    # "no such link" page, not a redirect; the pixel still answers.
    assert (click.status_code, pixel.status_code) == (404, 200)
    assert "location" not in click.headers
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


async def test_an_event_dated_far_ahead_is_a_422_naming_occurred_at(
    api: httpx.AsyncClient, worker: Worker, smtp: SmtpSink
) -> None:
    lead_id = await enroll(api, new_email())

    response = await api.post(
        "/v1/events",
        json={"lead_id": lead_id, "type": "page_view", "event_id": "future-1",
              "occurred_at": "2999-01-01T00:00:00Z"},
    )  # fmt: skip

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "occurred_at"]


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"])
async def test_an_event_time_with_no_utc_equivalent_is_a_422(
    api: httpx.AsyncClient, moment: str
) -> None:
    response = await api.post(
        "/v1/events",
        json={"lead_id": str(uuid.uuid4()), "type": "page_view", "event_id": "edge-1",
              "occurred_at": moment},
    )  # fmt: skip

    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "occurred_at"]


async def test_an_events_offset_is_kept_as_the_same_instant(
    api: httpx.AsyncClient, worker: Worker, smtp: SmtpSink, sessions: async_sessionmaker
) -> None:
    lead_id = await enroll(api, new_email())

    response = await api.post(
        "/v1/events",
        json={"lead_id": lead_id, "type": "page_view", "event_id": "offset-1",
              "occurred_at": "2026-11-30T10:00:00+05:00"},
    )  # fmt: skip

    assert response.status_code == 202, response.text
    async with sessions() as session:
        stored = (
            await session.execute(
                select(EngagementEvent.occurred_at).where(
                    EngagementEvent.lead_id == lead_id, EngagementEvent.event_id == "offset-1"
                )
            )
        ).scalar_one()
    assert stored.isoformat().startswith("2026-11-30T05:00:00")


async def test_repeated_unknown_keys_from_one_address_get_429_with_retry_after(
    api_url: str,
) -> None:
    async with httpx.AsyncClient(base_url=api_url) as client:
        answers = [
            (await client.get("/v1/journeys", headers={"Authorization": f"Bearer guess-{i}"}))
            for i in range(FAILED_AUTH_LIMIT + 5)
        ]

    codes = [a.status_code for a in answers]
    assert codes[:FAILED_AUTH_LIMIT] == [401] * FAILED_AUTH_LIMIT
    assert set(codes[FAILED_AUTH_LIMIT:]) == {429}
    assert int(answers[-1].headers["Retry-After"]) > 0


async def test_a_guess_in_a_first_authorization_header_counts_as_a_failure(
    api_url: str,
) -> None:
    """Routes read the first Authorization header: so does the guard, whatever follows."""
    headers = [("Authorization", "Bearer a-guess"), ("Authorization", f"Bearer {MARKETING_KEY}")]
    async with httpx.AsyncClient(base_url=api_url) as client:
        response = await client.get("/v1/journeys", headers=headers)

    assert response.status_code == 401


async def test_failed_keys_from_one_address_do_not_lock_the_key_out_elsewhere(
    api_url: str,
) -> None:
    """The limit is per client address: the key's holder at another address still gets in."""
    from starter.api.rate_limits import AttemptLimiter
    from starter.api.request_guard import FAILED_AUTH_WINDOW

    limiter = AttemptLimiter(limit=FAILED_AUTH_LIMIT, window=FAILED_AUTH_WINDOW)
    for _ in range(FAILED_AUTH_LIMIT):
        limiter.record("198.51.100.7")

    assert limiter.retry_after("198.51.100.7") is not None
    assert limiter.retry_after("203.0.113.9") is None
    async with httpx.AsyncClient(base_url=api_url) as client:
        right = await client.get(
            "/v1/journeys", headers={"Authorization": f"Bearer {MARKETING_KEY}"}
        )
    assert right.status_code == 200


@pytest.mark.parametrize("path", ["/v1/leads", "/v1/enrollments"])
async def test_a_nul_character_in_a_lead_field_is_a_422_naming_it(
    api: httpx.AsyncClient, path: str
) -> None:
    body: dict[str, object] = {"lead": {"email": new_email("nul"), "company": "ACME\x00Corp"}}
    if path == "/v1/enrollments":
        body["journey"] = "welcome"

    response = await api.post(path, json=body)

    assert response.status_code == 422, response.text
    assert ["body", "lead", "company"] in [e["loc"] for e in response.json()["detail"]]


async def test_a_nul_character_in_an_event_property_is_a_422(api: httpx.AsyncClient) -> None:
    lead_id = (await api.post("/v1/leads", json={"lead": {"email": new_email("nul-ev")}})).json()[
        "lead_id"
    ]

    response = await api.post(
        "/v1/events",
        json={"lead_id": lead_id, "type": "page_view", "event_id": "nul-1",
              "properties": {"url": "https://x.test/\x00"}},
    )  # fmt: skip

    assert response.status_code == 422, response.text
    assert ["body", "properties"] == response.json()["detail"][0]["loc"][:2]
