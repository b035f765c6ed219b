"""Tracked links and topics on the real stack: the email activity → PostgreSQL → SMTP sink,
and the public endpoints of the API (`/t/c/`, `/u/`, `/p/`)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from jinja2 import FileSystemLoader
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.testing import ActivityEnvironment
from temporalio.worker import Worker

from activities.contracts import SendEmailRequest, SendEmailResult
from activities.email import EmailActivities
from db.models import ConsentRecord, EmailLink, Lead, OutboxEmail, TopicSubscription
from db.topic_subscriptions import unsubscribed_among
from journeys.rendering import template_environment
from journeys.topics import JOURNEY_TOPIC
from starter.dev.smtp_sink import SmtpSink
from starter.services.link_tokens import LinkTokens
from starter.settings import Settings
from tests.conftest import body_text, new_email
from tests.lifecycle_helpers import eventually, lead_row
from tests.test_email_activity import make_lead
from tests.test_email_consent import CONFIRMED, enroll, local

SITE = "http://nurture.example"  # WEBSITE_BASE_URL is unset in the tests: PUBLIC_BASE_URL
PROBE_HTML = """{% extends "layouts/base.html" %}
{% block body %}
<p><a href="{{ links.pricing }}">Pricing</a>
<a href="https://partner.example/report?a=1&amp;b=2">Report</a>
<a href="/blog/launch">Blog</a>
<a href="mailto:sales@acme.example">Write</a> <a href="tel:+4930123">Call</a>
<a href="#top">Top</a>
<a data-nurture-track="off" href="https://private.example/x">Private</a>
<a href="javascript:alert(1)">Bad</a></p>
{% endblock %}"""
PROBE_TEXT = """{% extends "layouts/base.txt" %}{% block body %}Pricing: {{ links.pricing }}
Report: https://partner.example/report?a=1&b=2
Private: https://private.example/x
{% endblock %}"""
TRACKED_TARGETS = {
    f"{SITE}/pricing",
    "https://partner.example/report?a=1&b=2",
    f"{SITE}/blog/launch",
}


@pytest.fixture
def probe(tmp_path: Path) -> Iterator[str]:
    """An email template of this test's own, with every kind of link."""
    name = f"probe_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.subject.txt").write_text("Links")
    (tmp_path / f"{name}.html").write_text(PROBE_HTML)
    (tmp_path / f"{name}.txt").write_text(PROBE_TEXT)
    loader = template_environment().loader
    assert isinstance(loader, FileSystemLoader)
    loader.searchpath.append(str(tmp_path))
    yield name
    loader.searchpath.remove(str(tmp_path))


async def send(
    settings: Settings, sessions: async_sessionmaker, lead_id: str, template: str,
    journey: str = "welcome-series",
) -> SendEmailResult:  # fmt: skip
    """The journey email activity, as a journey's step calls it."""
    request = SendEmailRequest(
        lead_id=lead_id,
        workflow_id=f"journey:{journey}:{lead_id}",
        step_id="probe",
        template=template,
        idempotency_key=f"test/{uuid.uuid4()}",
    )
    return await ActivityEnvironment().run(EmailActivities(settings, sessions).send_email, request)


class Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str | None, str]] = []  # (href, the link's text)
        self._open: str | None = None
        self._in_a = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._in_a, self._open = True, dict(attrs).get("href")
            self.found.append((self._open, ""))

    def handle_data(self, data: str) -> None:
        if self._in_a and data.strip():
            href, _ = self.found[-1]
            self.found[-1] = (href, data.strip())

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._in_a = False


def anchors(mail: EmailMessage) -> dict[str, str | None]:
    """The email's links by their text."""
    parser = Anchors()
    parser.feed(body_text(mail, "html"))
    return {text: href for href, text in parser.found}


class TopicForm(HTMLParser):
    """The fields the page's topic form sends when saved as shown, as a browser sends them:
    hidden fields, ticked boxes, each select's selected option."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: list[tuple[str, str]] = []
        self._in_form = False
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "form":
            self._in_form = "topics" in (found.get("class") or "")
        if not self._in_form:
            return
        kind, name = found.get("type"), found.get("name")
        if tag == "input" and name and (kind == "hidden" or "checked" in found):
            self.fields.append((name, found.get("value") or "on"))
        elif tag == "select":
            self._select = name
        elif tag == "option" and self._select and "selected" in found:
            self.fields.append((self._select, found.get("value") or ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = False
        elif tag == "select":
            self._select = None


async def shown_form(api: httpx.AsyncClient, page: str) -> list[tuple[str, str]]:
    """The preference page's topic form as it was shown, to be saved later."""
    answer = await api.get(page)
    assert answer.status_code == 200, answer.text
    parser = TopicForm()
    parser.feed(answer.text)
    assert parser.fields
    return parser.fields


def posted(fields: list[tuple[str, str]]) -> dict[str, list[str]]:
    """`fields` with the save button, as form data (a name may repeat)."""
    data: dict[str, list[str]] = {"action": ["save"]}
    for name, value in fields:
        data.setdefault(name, []).append(value)
    return data


async def mailed(
    settings: Settings, sessions: async_sessionmaker, smtp: SmtpSink, template: str
) -> tuple[str, EmailMessage]:
    email = new_email()
    lead_id = await make_lead(sessions, email)
    assert (await send(settings, sessions, lead_id, template)).status == "sent"
    [mail] = await smtp.wait_for(email, 1)
    return lead_id, mail


# --- links -----------------------------------------------------------------------------


async def test_every_link_of_a_journey_email_redirects_through_t_c_to_its_stored_target(
    settings: Settings, sessions: async_sessionmaker, smtp: SmtpSink, api: httpx.AsyncClient,
    probe: str,
) -> None:  # fmt: skip
    _, mail = await mailed(settings, sessions, smtp, probe)
    links = anchors(mail)

    tracked = [links["Pricing"], links["Report"], links["Blog"]]
    assert all(href and href.startswith(f"{SITE}/t/c/") for href in tracked)
    answers = [await api.get(local(str(href))) for href in tracked]

    assert [a.status_code for a in answers] == [302, 302, 302]
    assert {a.headers["location"] for a in answers} == TRACKED_TARGETS
    async with sessions() as session:
        stored = (await session.execute(select(EmailLink.url))).scalars().all()
    assert TRACKED_TARGETS <= set(stored)


async def test_the_text_part_links_through_the_same_redirects(
    settings: Settings, sessions: async_sessionmaker, smtp: SmtpSink, probe: str
) -> None:
    _, mail = await mailed(settings, sessions, smtp, probe)
    html_links = anchors(mail)

    text = body_text(mail, "plain")

    assert f"Pricing: {html_links['Pricing']}" in text
    assert f"Report: {html_links['Report']}" in text
    assert "Private: https://private.example/x" in text  # opted out in the HTML


async def test_a_url_in_a_leads_name_is_no_tracked_redirect_in_the_text_part(
    settings: Settings, sessions: async_sessionmaker, smtp: SmtpSink
) -> None:
    email = new_email("phish")
    async with sessions() as session:
        lead = Lead(
            email=email, first_name="https://evil.example/login", consent_status="confirmed"
        )
        session.add(lead)
        await session.commit()
        lead_id = lead.id

    assert (await send(settings, sessions, lead_id, "welcome")).status == "sent"
    [mail] = await smtp.wait_for(email, 1)

    assert "Hi https://evil.example/login," in body_text(mail, "plain")
    async with sessions() as session:
        targets = (
            (
                await session.execute(
                    select(EmailLink.url)
                    .join(OutboxEmail, OutboxEmail.id == EmailLink.outbox_id)
                    .where(OutboxEmail.lead_id == lead_id)
                )
            )
            .scalars()
            .all()
        )
    assert targets and not [url for url in targets if "evil.example" in url]


async def test_mailto_tel_anchors_opted_out_and_own_links_are_left_alone(
    settings: Settings, sessions: async_sessionmaker, smtp: SmtpSink, probe: str
) -> None:
    _, mail = await mailed(settings, sessions, smtp, probe)

    links = anchors(mail)

    assert links["Write"] == "mailto:sales@acme.example"
    assert links["Call"] == "tel:+4930123"
    assert links["Top"] == "#top"
    assert links["Private"] == "https://private.example/x"
    assert "data-nurture-track" not in body_text(mail, "html")
    assert links["Bad"] is None  # a javascript: link loses its href
    assert str(links["Choose what you receive"]).startswith(f"{SITE}/p/")
    assert str(links["unsubscribe"]).startswith(f"{SITE}/u/")


async def test_a_click_is_counted_per_link_each_time(
    settings: Settings, sessions: async_sessionmaker, smtp: SmtpSink, api: httpx.AsyncClient,
    probe: str,
) -> None:  # fmt: skip
    _, mail = await mailed(settings, sessions, smtp, probe)
    url = local(str(anchors(mail)["Report"]))

    for _ in range(3):
        assert (await api.get(url)).status_code == 302

    async def counted() -> int:
        async with sessions() as session:
            query = (
                select(EmailLink.clicks)
                .join(OutboxEmail, OutboxEmail.id == EmailLink.outbox_id)
                .where(OutboxEmail.template == probe, EmailLink.url.like("%partner%"))
            )
            return int((await session.execute(query)).scalar_one())

    assert await eventually(counted, lambda clicks: clicks == 3) == 3


async def test_an_unknown_or_forged_link_token_is_404(
    settings: Settings, sessions: async_sessionmaker, smtp: SmtpSink, api: httpx.AsyncClient,
    probe: str,
) -> None:  # fmt: skip
    _, mail = await mailed(settings, sessions, smtp, probe)
    token = str(anchors(mail)["Pricing"]).rsplit("/", 1)[1]
    outbox_id, _ = LinkTokens(settings.require_secret_key()).read_link(token)
    unknown = LinkTokens(settings.require_secret_key()).link(outbox_id, 99)
    forged = LinkTokens("another-secret-of-forty-characters-000000").link(outbox_id, 1)

    for bad in (unknown, forged, token[:-2]):
        response = await api.get(f"/t/c/{bad}")
        assert response.status_code == 404, bad
        assert "location" not in response.headers


async def test_a_click_token_from_before_stored_links_still_redirects(
    settings: Settings, sessions: async_sessionmaker, smtp: SmtpSink, api: httpx.AsyncClient,
    probe: str,
) -> None:  # fmt: skip
    lead_id, _ = await mailed(settings, sessions, smtp, probe)
    async with sessions() as session:
        outbox_id = (
            await session.execute(select(OutboxEmail.id).where(OutboxEmail.lead_id == lead_id))
        ).scalar_one()
    tokens = LinkTokens(settings.require_secret_key())

    pricing = await api.get(f"/t/c/{tokens.click(outbox_id, 'pricing')}")
    preferences = await api.get(f"/t/c/{tokens.click(outbox_id, 'preferences')}")

    assert (pricing.status_code, pricing.headers["location"]) == (302, f"{SITE}/pricing")
    assert preferences.headers["location"] == f"{SITE}/p/{tokens.preferences(lead_id)}"


async def test_the_journey_report_shows_clicks_per_link(
    api: httpx.AsyncClient, worker: Worker, smtp: SmtpSink
) -> None:
    email = new_email()
    await enroll(api, email)
    [welcome] = await smtp.wait_for(email, 1)
    guide = local(str(anchors(welcome)["Read the getting-started guide"]))
    for _ in range(2):
        await api.get(guide)

    async def report() -> list[dict]:
        stats = (await api.get("/v1/analytics/journeys/welcome")).json()
        return [
            link for link in stats["links"]
            if link["url"] == f"{SITE}/guides/getting-started" and link["total_clicks"] >= 2
        ]  # fmt: skip

    [link] = await eventually(report, bool)
    assert link["template"] == "welcome" and link["name"] == "getting_started"
    assert link["unique_clicks"] >= 1 and link["emails"] >= 1


# --- topics ----------------------------------------------------------------------------


async def test_one_click_unsubscribe_leaves_only_the_messages_topic(
    api: httpx.AsyncClient, worker: Worker, smtp: SmtpSink, sessions: async_sessionmaker,
    settings: Settings,
) -> None:  # fmt: skip
    email = new_email()
    lead_id = await enroll(api, email)
    [welcome] = await smtp.wait_for(email, 1)
    one_click = local(welcome["List-Unsubscribe"].strip("<>"))

    first = await api.post(one_click, content=b"List-Unsubscribe=One-Click")
    again = await api.post(one_click, content=b"List-Unsubscribe=One-Click")

    assert (first.status_code, again.status_code) == (200, 200)
    assert (await lead_row(sessions, lead_id)).consent_status == "confirmed"
    async with sessions() as session:
        assert await unsubscribed_among(session, [lead_id], JOURNEY_TOPIC) == {lead_id}
        assert await unsubscribed_among(session, [lead_id], "newsletter") == set()
        records = (
            await session.execute(
                select(ConsentRecord.action, ConsentRecord.topic).where(
                    ConsentRecord.lead_id == lead_id, ConsentRecord.action.like("topic_%")
                )
            )
        ).all()
    assert records == [("topic_unsubscribed", JOURNEY_TOPIC)]
    skipped = await send(settings, sessions, lead_id, "ws_tips")
    assert (skipped.status, skipped.reason) == ("skipped", f"unsubscribed from {JOURNEY_TOPIC}")


async def test_the_topic_unsubscribe_page_asks_before_it_changes_anything(
    api: httpx.AsyncClient, worker: Worker, smtp: SmtpSink, sessions: async_sessionmaker
) -> None:
    email = new_email()
    lead_id = await enroll(api, email)
    [welcome] = await smtp.wait_for(email, 1)

    page = await api.get(local(welcome["List-Unsubscribe"].strip("<>")))

    assert page.status_code == 200 and '<form method="post"' in page.text
    assert "Follow-ups" in page.text
    async with sessions() as session:
        assert await unsubscribed_among(session, [lead_id], JOURNEY_TOPIC) == set()


async def test_a_re_enrollment_claiming_consent_does_not_resubscribe_a_topic(
    api: httpx.AsyncClient, worker: Worker, smtp: SmtpSink, sessions: async_sessionmaker,
    settings: Settings,
) -> None:  # fmt: skip
    email = new_email()
    lead_id = await enroll(api, email)
    [welcome] = await smtp.wait_for(email, 1)
    await api.post(local(welcome["List-Unsubscribe"].strip("<>")))

    again = await api.post(
        "/v1/enrollments",
        json={"journey": "welcome-series", "lead": {"email": email}, "consent": CONFIRMED},
    )

    assert again.status_code == 202
    async with sessions() as session:
        row = await session.get(TopicSubscription, (lead_id, JOURNEY_TOPIC))
    assert row is not None and row.subscribed is False
    result = await send(settings, sessions, lead_id, "ws_tips")
    assert result.status == "skipped"
    assert len(smtp.to(email)) == 1  # the welcome only


async def test_a_frequency_defers_the_next_email_of_the_topic(
    settings: Settings, sessions: async_sessionmaker, smtp: SmtpSink, api: httpx.AsyncClient,
    probe: str,
) -> None:  # fmt: skip
    lead_id, mail = await mailed(settings, sessions, smtp, probe)
    page = local(str(anchors(mail)["Choose what you receive"]))
    form = posted(await shown_form(api, page))
    form[f"frequency-{JOURNEY_TOPIC}"] = ["weekly"]

    saved = await api.post(page, data=form)
    later = await send(settings, sessions, lead_id, probe)

    assert saved.status_code == 303
    assert later.status == "deferred" and later.retry_at is not None
    async with sessions() as session:
        sent_at = (
            await session.execute(
                select(OutboxEmail.sent_at).where(
                    OutboxEmail.lead_id == lead_id, OutboxEmail.status == "sent"
                )
            )
        ).scalar_one()
    assert abs((later.retry_at - sent_at).total_seconds() - 7 * 24 * 3600) < 1


async def test_saving_a_page_loaded_before_a_one_click_unsubscribe_keeps_the_topic_off(
    settings: Settings, sessions: async_sessionmaker, smtp: SmtpSink, api: httpx.AsyncClient,
    probe: str,
) -> None:  # fmt: skip
    lead_id, mail = await mailed(settings, sessions, smtp, probe)
    page = local(str(anchors(mail)["Choose what you receive"]))
    stale = await shown_form(api, page)  # shows the journey topic ticked
    await api.post(
        local(mail["List-Unsubscribe"].strip("<>")), content=b"List-Unsubscribe=One-Click"
    )

    saved = await api.post(page, data=posted(stale))

    assert saved.status_code == 303 and saved.headers["location"].endswith("notice=unchanged")
    async with sessions() as session:
        assert await unsubscribed_among(session, [lead_id], JOURNEY_TOPIC) == {lead_id}
        actions = (
            (
                await session.execute(
                    select(ConsentRecord.action).where(
                        ConsentRecord.lead_id == lead_id, ConsentRecord.topic == JOURNEY_TOPIC
                    )
                )
            )
            .scalars()
            .all()
        )
    assert actions == ["topic_unsubscribed"]


async def test_a_stale_page_saves_the_change_the_person_made(
    settings: Settings, sessions: async_sessionmaker, smtp: SmtpSink, api: httpx.AsyncClient,
    probe: str,
) -> None:  # fmt: skip
    lead_id, mail = await mailed(settings, sessions, smtp, probe)
    page = local(str(anchors(mail)["Choose what you receive"]))
    stale = await shown_form(api, page)
    await api.post(
        local(mail["List-Unsubscribe"].strip("<>")), content=b"List-Unsubscribe=One-Click"
    )
    newsletter_unticked = [field for field in stale if field != ("topic", "newsletter")]

    saved = await api.post(page, data=posted(newsletter_unticked))

    assert saved.status_code == 303 and saved.headers["location"].endswith("notice=saved")
    async with sessions() as session:
        assert await unsubscribed_among(session, [lead_id], "newsletter") == {lead_id}


async def test_a_one_click_unsubscribe_from_an_unknown_topic_unsubscribes_from_everything(
    settings: Settings, sessions: async_sessionmaker, smtp: SmtpSink, api: httpx.AsyncClient,
    probe: str,
) -> None:  # fmt: skip
    lead_id, _ = await mailed(settings, sessions, smtp, probe)
    # A message of a topic since renamed or removed.
    token = LinkTokens(settings.require_secret_key()).unsubscribe(lead_id, "retired-topic")

    answer = await api.post(f"/u/{token}", content=b"List-Unsubscribe=One-Click")

    assert answer.status_code == 200
    assert (await lead_row(sessions, lead_id)).consent_status == "unsubscribed"


async def test_the_preference_page_escapes_and_refuses_a_forged_token(
    api: httpx.AsyncClient,
) -> None:
    forged = LinkTokens("another-secret-of-forty-characters-000000").preferences("x")

    for token in (forged, "<script>", "x" * 400):
        response = await api.get(f"/p/{token}")
        assert response.status_code == 404
        assert "<script>" not in response.text
    assert (await api.post(f"/p/{forged}", data={"action": "unsubscribe-all"})).status_code == 404


async def test_a_post_from_another_site_changes_nothing(
    settings: Settings, sessions: async_sessionmaker, smtp: SmtpSink, api: httpx.AsyncClient,
    probe: str,
) -> None:  # fmt: skip
    lead_id, mail = await mailed(settings, sessions, smtp, probe)
    page = local(str(anchors(mail)["Choose what you receive"]))

    response = await api.post(
        page, data={"action": "unsubscribe-all"}, headers={"Origin": "https://evil.example"}
    )

    assert response.status_code == 403
    assert (await lead_row(sessions, lead_id)).consent_status == "confirmed"


async def test_a_form_with_an_unknown_frequency_is_refused_and_saves_nothing(
    settings: Settings, sessions: async_sessionmaker, smtp: SmtpSink, api: httpx.AsyncClient,
    probe: str,
) -> None:  # fmt: skip
    lead_id, mail = await mailed(settings, sessions, smtp, probe)
    page = local(str(anchors(mail)["Choose what you receive"]))

    response = await api.post(page, data={"action": "save", "frequency-events": "hourly"})

    assert response.status_code == 400
    assert re.search(r"frequency must be any, weekly or monthly", response.text)
    async with sessions() as session:
        rows = await session.execute(
            select(TopicSubscription).where(TopicSubscription.lead_id == lead_id)
        )
        assert rows.first() is None
