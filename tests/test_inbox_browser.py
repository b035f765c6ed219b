"""The sales inbox in a real browser (Debian's headless Chromium, driven by Playwright):
a rep signs in with their key, sees their MQLs with the score explained, and accepts or
rejects them."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.async_api import Page

import os
from pathlib import Path

import httpx
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.worker import Worker

from tests.browser import needs_chromium
from tests.conftest import REP_KEYS
from tests.lifecycle_helpers import decider, eventually, lead_row
from tests.test_sales_loop import make_mql

pytestmark = needs_chromium


async def sign_in(page: Page, api_url: str, key: str) -> None:
    await page.goto(f"{api_url}/inbox")
    assert page.url.endswith("/inbox/login")
    await page.fill("#key", key)
    await page.click("button[type=submit]")


async def test_a_rep_signs_in_sees_the_explained_mql_and_rejects_it_with_a_reason(
    page: Page, api: httpx.AsyncClient, api_url: str, worker: Worker, sessions: async_sessionmaker,
    tmp_path: Path,
) -> None:  # fmt: skip
    lead = decider()
    lead_id = await make_mql(api, sessions, lead)  # kim's, by territory
    score = (await api.get(f"/v1/leads/{lead_id}/score")).json()

    await sign_in(page, api_url, REP_KEYS["kim"])

    card = page.locator(f"section[data-lead-id='{lead_id}']")
    await card.wait_for()
    assert str(lead["first_name"]) in await card.locator("h2").inner_text()
    assert f"Score {score['total']}" in await card.locator(".total").inner_text()
    explanation = await card.locator("table.score").inner_text()
    assert "demo request" in explanation and "VP or head title" in explanation
    shot = Path(os.environ.get("NURTURE_SCREENSHOT_DIR", tmp_path)) / "sales-inbox.png"
    await card.scroll_into_view_if_needed()
    await page.screenshot(path=str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000

    await card.locator("input[name=reason]").fill("no budget this year")
    await card.locator("button.reject").click()

    await page.locator(".notice").wait_for()
    assert "now recycled" in await page.locator(".notice").inner_text()
    assert await page.locator(f"section[data-lead-id='{lead_id}']").count() == 0
    row = await eventually(lambda: lead_row(sessions, lead_id), lambda r: r.rejections == 1)
    assert row.lifecycle_stage == "recycled"


async def test_a_rep_accepts_an_mql_from_the_inbox(
    page: Page, api: httpx.AsyncClient, api_url: str, worker: Worker, sessions: async_sessionmaker,
) -> None:  # fmt: skip
    lead_id = await make_mql(api, sessions, decider())

    await sign_in(page, api_url, REP_KEYS["kim"])
    await page.locator(f"section[data-lead-id='{lead_id}'] button.accept").click()

    await page.locator(".notice").wait_for()
    assert "now sal" in await page.locator(".notice").inner_text()
    # The page answers with the workflow's decision; the stage's row follows it.
    row = await eventually(
        lambda: lead_row(sessions, lead_id), lambda r: r.lifecycle_stage != "mql"
    )
    assert row.lifecycle_stage == "sal"


async def test_another_reps_inbox_does_not_show_the_lead(
    page: Page, api: httpx.AsyncClient, api_url: str, worker: Worker, sessions: async_sessionmaker,
) -> None:  # fmt: skip
    lead_id = await make_mql(api, sessions, decider())

    await sign_in(page, api_url, REP_KEYS["alex"])

    await page.locator("h1").wait_for()
    assert await page.locator(f"section[data-lead-id='{lead_id}']").count() == 0


async def test_a_wrong_key_is_told_so_and_stays_signed_out(page: Page, api_url: str) -> None:
    await sign_in(page, api_url, "not-a-key-at-all-000")

    assert "Unknown key" in await page.locator(".error").inner_text()
    await page.goto(f"{api_url}/inbox")
    assert page.url.endswith("/inbox/login")
