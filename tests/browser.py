"""Debian's headless Chromium through Playwright, for the pages a person uses."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from starter.dev.provisioning.browser import find_chromium

CHROMIUM = find_chromium()
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="needs Chromium (`nurture provision` installs Debian's package)"
)


@pytest.fixture
async def page() -> AsyncIterator[object]:
    """A fresh browser page (1000 x 900)."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        context = await browser.new_context(viewport={"width": 1000, "height": 900})
        yield await context.new_page()
        await browser.close()
