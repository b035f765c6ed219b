"""The hosted sign-up form `/f/{form}`: the person's own act that brings a suppressed
address back, in a real browser (Debian's Chromium through Playwright) and against
forgery, cross-site posts and floods."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.async_api import Page

import os
import re
from pathlib import Path

import httpx
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.worker import Worker

from starter.api.rate_limits import AttemptLimiter
from starter.api.routes.signup import FILLS_PER_HOUR
from starter.dev.smtp_sink import SmtpSink
from tests.browser import needs_chromium
from tests.conftest import new_email
from tests.lifecycle_helpers import eventually, lead_row
from tests.test_email_consent import link
from tests.test_opt_out import unsubscribed_lead


async def form_token(api: httpx.AsyncClient, form: str = "newsletter") -> str:
    page = await api.get(f"/f/{form}")
    found = re.search(r'name="token" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


def fill(token: str, email: str, consent: str = "yes") -> dict[str, str]:
    return {"token": token, "email": email, "consent": consent}


@needs_chromium
async def test_an_unsubscribed_person_subscribes_again_in_the_browser(
    page: Page, api: httpx.AsyncClient, api_url: str, worker: Worker, smtp: SmtpSink,
    sessions: async_sessionmaker, tmp_path: Path,
) -> None:  # fmt: skip
    email = new_email()
    lead_id = await unsubscribed_lead(api, smtp, email)

    await page.goto(f"{api_url}/f/newsletter")
    await page.fill("input[name=email]", email)
    await page.fill("input[name=first_name]", "Una")
    await page.check("input[name=consent]")
    await page.click("button[type=submit]")
    await page.wait_for_selector("text=sent you an email with a link to confirm")
    confirmation = (await smtp.wait_for(email, 2))[1]
    confirm_url = link(confirmation, "/c/").replace("http://nurture.example", api_url)
    await page.goto(confirm_url)
    await page.click("button[type=submit]")
    await page.wait_for_selector("text=Your subscription is confirmed")
    await page.screenshot(path=os.environ.get("NURTURE_SCREENSHOT", str(tmp_path / "f.png")))

    row = await eventually(
        lambda: lead_row(sessions, lead_id), lambda r: r.consent_status == "confirmed"
    )
    assert row.consent_status == "confirmed"
    await smtp.wait_for(email, 3, within=30)  # the newsletter's welcome, held until now


async def test_a_post_from_another_site_signs_nobody_up(
    api: httpx.AsyncClient, worker: Worker, sessions: async_sessionmaker
) -> None:
    email = new_email()

    response = await api.post(
        "/f/newsletter",
        data=fill(await form_token(api), email),
        headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
    )

    assert response.status_code == 403
    assert "fill in the form on this page" in response.text


async def test_a_fill_without_the_pages_token_is_refused(api: httpx.AsyncClient) -> None:
    for token in ("", "forged.token", (await form_token(api, "contact"))):
        response = await api.post("/f/newsletter", data=fill(token, new_email()))

        assert response.status_code == 400, token
        assert "This form has expired" in response.text


async def test_a_fill_without_the_consent_box_ticked_subscribes_nobody(
    api: httpx.AsyncClient,
) -> None:
    response = await api.post(
        "/f/newsletter", data=fill(await form_token(api), new_email(), consent="")
    )

    assert response.status_code == 422
    assert "tick the box" in response.text


async def test_a_bad_address_is_refused_with_the_form_again(api: httpx.AsyncClient) -> None:
    response = await api.post("/f/newsletter", data=fill(await form_token(api), "not-an-address"))

    assert response.status_code == 422
    assert "Please check the email" in response.text and 'value="not-an-address"' in response.text


async def test_an_unknown_form_is_a_404_page(api: httpx.AsyncClient) -> None:
    assert (await api.get("/f/no-such-form")).status_code == 404
    assert (await api.post("/f/no-such-form", data={})).status_code == 404


async def test_a_flood_of_fills_from_one_address_is_slowed_with_429(
    api: httpx.AsyncClient, worker: Worker
) -> None:
    token = await form_token(api)
    answers = [
        (await api.post("/f/newsletter", data=fill(token, "not-an-address"))).status_code
        for _ in range(FILLS_PER_HOUR + 1)
    ]

    assert answers[:FILLS_PER_HOUR] == [422] * FILLS_PER_HOUR
    refused = await api.post("/f/newsletter", data=fill(token, new_email()))
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0


def test_the_limiter_lets_attempts_through_again_once_the_window_has_passed() -> None:
    now = [0.0]
    limiter = AttemptLimiter(limit=2, window=60, clock=lambda: now[0])

    limiter.record("a")
    limiter.record("a")
    blocked = limiter.retry_after("a")
    now[0] = 61.0

    assert blocked == 60
    assert limiter.retry_after("a") is None
    assert limiter.retry_after("b") is None
