"""The preference page in a real browser (Debian's headless Chromium, driven by Playwright),
reached from the footer of a journey email: plain forms, no JavaScript needed."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.async_api import Page

import os
from email.message import EmailMessage
from pathlib import Path

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.worker import Worker

from db.models import ConsentRecord
from journeys.topics import JOURNEY_TOPIC
from starter.dev.smtp_sink import SmtpSink
from starter.settings import Settings
from tests.browser import needs_chromium
from tests.conftest import new_email
from tests.lifecycle_helpers import lead_row
from tests.test_email_consent import enroll, link, local
from tests.test_preferences import send

pytestmark = needs_chromium


async def open_preferences(
    page: Page, api: httpx.AsyncClient, api_url: str, smtp: SmtpSink
) -> tuple[str, EmailMessage]:
    """Enroll a confirmed lead in `welcome`, open its email's preference link."""
    email = new_email()
    lead_id = await enroll(api, email)
    [welcome] = await smtp.wait_for(email, 1)
    await page.goto(api_url + local(link(welcome, "/p/")))
    await page.locator("form.topics").wait_for()
    return lead_id, welcome


async def test_switching_off_a_topic_stops_its_next_email(
    page: Page, api: httpx.AsyncClient, api_url: str, worker: Worker, smtp: SmtpSink,
    sessions: async_sessionmaker, settings: Settings, tmp_path: Path,
) -> None:  # fmt: skip
    lead_id, welcome = await open_preferences(page, api, api_url, smtp)
    topic = page.locator(f"fieldset[data-topic='{JOURNEY_TOPIC}']")
    assert "Follow-ups" in await topic.locator("legend").inner_text()
    assert await page.locator("fieldset[data-topic]").count() >= 4
    shot = Path(os.environ.get("NURTURE_SCREENSHOT_DIR", tmp_path)) / "preference-center.png"
    await page.screenshot(path=str(shot), full_page=True)

    await topic.locator("input[type=checkbox]").uncheck()
    await page.click("button.save")

    await page.locator(".notice").wait_for()
    assert "saved" in await page.locator(".notice").inner_text()
    assert not await topic.locator("input[type=checkbox]").is_checked()
    result = await send(settings, sessions, lead_id, "ws_tips")
    assert (result.status, result.reason) == ("skipped", f"unsubscribed from {JOURNEY_TOPIC}")
    assert len(smtp.to(str(welcome["To"]))) == 1
    async with sessions() as session:
        records = (
            (
                await session.execute(
                    select(ConsentRecord).where(
                        ConsentRecord.lead_id == lead_id, ConsentRecord.topic == JOURNEY_TOPIC
                    )
                )
            )
            .scalars()
            .all()
        )
    assert [(r.action, r.source) for r in records] == [("topic_unsubscribed", "preference page")]
    assert records[0].user_agent  # the browser's, as evidence


async def test_choosing_weekly_defers_the_next_email_of_the_topic(
    page: Page, api: httpx.AsyncClient, api_url: str, worker: Worker, smtp: SmtpSink,
    sessions: async_sessionmaker, settings: Settings,
) -> None:  # fmt: skip
    lead_id, _ = await open_preferences(page, api, api_url, smtp)

    await page.select_option(f"select[name='frequency-{JOURNEY_TOPIC}']", "weekly")
    await page.click("button.save")

    await page.locator(".notice").wait_for()
    selected = page.locator(f"select[name='frequency-{JOURNEY_TOPIC}']")
    assert await selected.input_value() == "weekly"
    result = await send(settings, sessions, lead_id, "ws_tips")
    assert result.status == "deferred" and result.reason == (
        f"the lead's frequency for {JOURNEY_TOPIC}"
    )


async def test_unsubscribing_from_everything_on_the_page(
    page: Page, api: httpx.AsyncClient, api_url: str, worker: Worker, smtp: SmtpSink,
    sessions: async_sessionmaker,
) -> None:  # fmt: skip
    lead_id, _ = await open_preferences(page, api, api_url, smtp)

    await page.click("button.unsubscribe-all")

    await page.locator(".notice").wait_for()
    assert "unsubscribed from all" in await page.locator(".notice").inner_text()
    assert await page.locator("form.topics").count() == 0  # nothing left to choose
    assert (await lead_row(sessions, lead_id)).consent_status == "unsubscribed"


async def test_the_page_works_with_javascript_off(
    api: httpx.AsyncClient, api_url: str, worker: Worker, smtp: SmtpSink,
    sessions: async_sessionmaker,
) -> None:  # fmt: skip
    from playwright.async_api import async_playwright

    from tests.browser import CHROMIUM

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        context = await browser.new_context(java_script_enabled=False)
        page = await context.new_page()
        lead_id, _ = await open_preferences(page, api, api_url, smtp)
        await page.locator(f"fieldset[data-topic='{JOURNEY_TOPIC}'] input").uncheck()
        await page.click("button.save")
        await page.locator(".notice").wait_for()
        await browser.close()

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
    assert "topic_unsubscribed" in actions
