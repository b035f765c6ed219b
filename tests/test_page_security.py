"""Pages a person uses, against an attacker (issue 19, items 9 and 10): inbox sessions end
on sign-out, CSRF tokens belong to one session, sign-in can't be forced from another site,
notices can't be written by a link, and every answer carries the security headers."""

from __future__ import annotations

import re

import httpx
import pytest

from starter.api.app import create_app
from starter.settings import Settings
from tests.conftest import REP_KEYS
from tests.http_servers import serving

SECURITY_HEADERS = ("content-security-policy", "x-frame-options", "x-content-type-options",
                    "referrer-policy")  # fmt: skip


async def signed_in(api_url: str, key: str) -> httpx.AsyncClient:
    """A browser-like client signed in to the inbox with `key`."""
    client = httpx.AsyncClient(base_url=api_url, follow_redirects=False)
    page = await client.get("/inbox/login")
    token = re.search(r'name="login_token" value="([^"]+)"', page.text)
    assert token, page.text
    response = await client.post(
        "/inbox/login",
        data={"key": key, "login_token": token.group(1)},
        headers={"Origin": api_url},
    )
    assert response.status_code == 303 and response.headers["location"] == "/inbox"
    return client


def csrf_of(page: str) -> str | None:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    return found.group(1) if found else None


async def test_a_session_cookie_is_worthless_after_sign_out(api_url: str) -> None:
    client = await signed_in(api_url, REP_KEYS["kim"])
    cookie = client.cookies.get("nurture_inbox")
    assert cookie is not None
    assert (await client.get("/inbox")).status_code == 200

    await client.post("/inbox/logout")

    async with httpx.AsyncClient(base_url=api_url, cookies={"nurture_inbox": cookie}) as thief:
        again = await thief.get("/inbox", follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"] == "/inbox/login"
    await client.aclose()


async def test_a_csrf_token_of_one_session_is_refused_in_another(
    api_url: str, settings: Settings
) -> None:
    first = await signed_in(api_url, REP_KEYS["kim"])
    second = await signed_in(api_url, REP_KEYS["kim"])
    # A token from a page of the first session (there may be no lead on it: make one up).
    page = (await first.get("/inbox")).text
    token = csrf_of(page) or "x"

    response = await second.post(
        "/inbox/leads/00000000-0000-0000-0000-000000000000/feedback",
        data={"outcome": "accept", "csrf": token},
    )

    assert response.status_code == 403
    await first.aclose()
    await second.aclose()


async def test_another_site_cannot_sign_a_visitor_in(api_url: str) -> None:
    async with (
        httpx.AsyncClient(base_url=api_url) as browser,
        httpx.AsyncClient(base_url=api_url) as attacker,
    ):
        # The attacker's page posts its own key, with a token it fetched for itself.
        attacker_page = await attacker.get("/inbox/login")
        token = re.search(r'name="login_token" value="([^"]+)"', attacker_page.text)
        assert token
        forced = await browser.post(
            "/inbox/login",
            data={"key": REP_KEYS["sam"], "login_token": token.group(1)},
            headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
        )

    assert forced.status_code == 403
    assert "nurture_inbox=" not in forced.headers.get("set-cookie", "")


async def test_a_sign_in_without_the_forms_token_is_refused(api_url: str) -> None:
    async with httpx.AsyncClient(base_url=api_url) as client:
        response = await client.post("/inbox/login", data={"key": REP_KEYS["kim"]})

    assert response.status_code == 403


async def test_a_notice_in_the_url_shows_only_text_of_our_own(api_url: str) -> None:
    client = await signed_in(api_url, REP_KEYS["kim"])

    forged = await client.get("/inbox", params={"notice": "Call +1-555-0100 to verify your key"})
    ours = await client.get("/inbox", params={"notice": "accepted", "stage": "sal"})

    assert "555-0100" not in forged.text and 'class="notice"' not in forged.text
    assert "Accepted: the lead is now sal." in ours.text
    await client.aclose()


@pytest.mark.parametrize(
    "path",
    ["/u/not-a-token", "/c/not-a-token", "/f/newsletter", "/docs", "/inbox/login",
     "/v1/journeys", "/t/c/not-a-token", "/openapi.json"],
)  # fmt: skip
async def test_every_answer_carries_the_security_headers(api_url: str, path: str) -> None:
    async with httpx.AsyncClient(base_url=api_url) as client:
        response = await client.get(path)

    for header in SECURITY_HEADERS:
        assert header in response.headers, (path, header)
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "strict-transport-security" not in response.headers  # plain http here


async def test_https_deployments_send_hsts(settings: Settings) -> None:
    https = settings.model_copy(update={"public_base_url": "https://nurture.example"})

    async with serving(create_app(https)) as url, httpx.AsyncClient(base_url=url) as client:
        response = await client.get("/healthz")

    assert response.headers["strict-transport-security"].startswith("max-age=")
