"""Out-of-office replies (issue 16): the return date and the deputy, read from real-world
phrasings (pure), then on the real stack — the listener, a worker, PostgreSQL, the SMTP
sink and, for the hold, the time-skipping server."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Worker

from activities.contracts import ProcessInboundRequest
from activities.email import EmailActivities
from activities.inbound import InboundActivities
from db.models import Account, Enrollment, Lead, OutboxEmail
from journeys.out_of_office import Deputy, deputy_address, hold_until, reply_text, return_date
from journeys.registry import get_journey
from starter.dev.simulation import simulation_stack
from starter.dev.smtp_sink import SmtpSink, free_port
from starter.inbound.listener import InboundHandler, serve
from starter.services.enrollment import start_journey
from starter.services.lead_workflow import LeadLifecycle
from starter.services.link_tokens import LinkTokens
from starter.settings import Settings
from tests.conftest import ADMIN_KEY, REP_KEYS, body_text, new_email
from tests.lifecycle_helpers import eventually
from tests.test_email_activity import request
from tests.test_inbound import BOUNCE_DOMAIN
from tests.test_inbound import _deliver as deliver
from tests.test_inbound import _stored as stored
from tests.test_page_security import signed_in
from workflows.contracts import TIMELINE_QUERY, TimelineEntry, journey_workflow_id

# Tuesday 1 December 2026, 10:00 UTC: when the replies below were written.
WRITTEN = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "back"),
    [
        # English
        ("I will be back on 14 December.", date(2026, 12, 14)),
        ("Thank you. I'm back in the office on Monday 7th December.", date(2026, 12, 7)),
        ("I am on annual leave returning Monday 4th January 2027.", date(2027, 1, 4)),
        ("I will return on January 4. For anything urgent, call the office.", date(2027, 1, 4)),
        ("I'm currently out of office and will be back on the 8th.", date(2026, 12, 8)),
        ("I'm back tomorrow.", date(2026, 12, 2)),
        ("I'm out of the office. I'll be back 12/10/2026.", date(2026, 12, 10)),
        ("Back 2026-12-10.", date(2026, 12, 10)),
        ("I'll be back in the office on Wednesday, 6 January.", date(2027, 1, 6)),
        ("Returning Jan 5th.", date(2027, 1, 5)),
        # "until" names the last day away: back the day after
        ("I am out of the office until Monday, December 14th.", date(2026, 12, 15)),
        ("I'm travelling with limited access to email until Wed 9 Dec.", date(2026, 12, 10)),
        ("I'm away until 12/14 with no access to email.", date(2026, 12, 15)),
        ("Out of office from 20 December until 3 January inclusive.", date(2027, 1, 4)),
        # German
        ("Ich bin bis einschließlich 3. Januar nicht im Büro.", date(2027, 1, 4)),
        ("Ab dem 05.01.2027 bin ich wieder zurück.", date(2027, 1, 5)),
        ("Ich bin zurück am 05.01.2027.", date(2027, 1, 5)),
        ("Vielen Dank! Ich bin vom 20.12. bis 06.01. im Urlaub.", date(2027, 1, 7)),
        ("Ich befinde mich bis zum 18.12.2026 im Urlaub.", date(2026, 12, 19)),
        ("Ich bin ab Montag wieder erreichbar.", date(2026, 12, 7)),
        ("Bin wieder am 7.1. im Haus.", date(2027, 1, 7)),
        ("Ich bin am Montag, den 4. Januar 2027 wieder für Sie da.", date(2027, 1, 4)),
        ("Ich bin ab dem 7. Januar wieder im Büro.", date(2027, 1, 7)),
    ],
)  # fmt: skip
def test_the_return_date_is_read_from_english_and_german_replies(text: str, back: date) -> None:
    assert return_date(text, WRITTEN) == back


@pytest.mark.parametrize(
    "text",
    [
        "I am out of the office with limited access to email.",
        "I am out of the office. Call me on +49 30 1234567.",
        "I may reply late.",
        "I'm on parental leave until 1 June 2027.",  # beyond the horizon: not believed
        "I was out until 2 November.",  # the past (next year's 2 November is too far)
        "Ich bin heute nicht im Büro.",
        "",
    ],
)
def test_a_reply_without_a_plausible_return_date_gives_none(text: str) -> None:
    assert return_date(text, WRITTEN) is None


def test_of_several_dates_the_return_wins() -> None:
    text = "Ich bin vom 20. Dezember bis zum 2. Januar im Urlaub und ab 3. Januar wieder da."

    assert return_date(text, WRITTEN) == date(2027, 1, 3)


def test_the_hold_starts_the_day_the_lead_is_back_where_it_lives() -> None:
    berlin = ZoneInfo("Europe/Berlin")

    held = hold_until(date(2027, 1, 4), berlin)

    assert held.astimezone(UTC) == datetime(2027, 1, 3, 23, 0, tzinfo=UTC)


def test_the_reply_text_leaves_out_the_quoted_original() -> None:
    raw = (
        "From: ada@acme.example\r\nSubject: Abwesenheitsnotiz\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        "Ich bin ab dem 7. Januar wieder da.\r\n\r\n"
        "-----Ursprüngliche Nachricht-----\r\nVon: Nurture <hello@nurture.example>\r\n"
        "Our webinar is on 20 December, contact events@acme.example\r\n"
    ).encode()

    text = reply_text(raw)

    assert "7. Januar" in text and "webinar" not in text


def test_the_reply_text_of_an_html_only_reply_is_its_words() -> None:
    raw = (
        b"Subject: Automatic reply\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        b"<html><body><p>I'm back on <b>14 December</b>.</p><style>p{}</style></body></html>"
    )

    assert return_date(reply_text(raw), WRITTEN) == date(2026, 12, 14)


# --- the deputy ---------------------------------------------------------------------------

ACME = frozenset({"acme.example"})
OURS = frozenset({"nurture.example", "bounces.nurture.example"})


def deputy(text: str) -> Deputy | None:
    return deputy_address(
        text, writer="ada@acme.example", organisation_domains=ACME, own_domains=OURS
    )


def test_a_colleague_named_in_the_reply_is_the_deputy_with_a_name_from_the_address() -> None:
    found = deputy("In urgent cases please contact my colleague Anna (anna.schmidt@acme.example).")

    assert found == Deputy("anna.schmidt@acme.example", "Anna", "Schmidt")


def test_a_deputy_at_a_subdomain_of_the_organisation_counts() -> None:
    found = deputy("In dringenden Fällen wenden Sie sich bitte an Max <MAX@de.acme.example>.")

    assert found is not None and found.email == "max@de.acme.example"


@pytest.mark.parametrize(
    "text",
    [
        "Please contact ada@acme.example when I'm back.",  # the writer herself
        "Please write to noreply@acme.example.",  # an automaton
        "Please contact info@acme.example or office@acme.example.",  # role mailboxes
        "Please contact john.doe@gmail.com.",  # not the organisation
        "Please contact partner@agency.example.",  # another company
        "Reply to hello@nurture.example.",  # our own domain
        "bounce+12-abc@bounces.nurture.example",  # our bounce domain
        "Please contact anna@acme",  # no address
    ],
)
def test_addresses_that_are_no_colleague_are_not_taken(text: str) -> None:
    assert deputy(text) is None


def test_a_lead_at_a_free_mail_domain_has_no_deputy_at_that_domain() -> None:
    found = deputy_address(
        "I'm away. Please contact john.doe@gmail.com or jane.roe@googlemail.com.",
        writer="ada.lovelace@gmail.com",
        organisation_domains=frozenset({"gmail.com", "googlemail.com"}),
        own_domains=OURS,
    )

    assert found is None


def test_the_first_colleague_is_taken_after_skipping_the_others() -> None:
    found = deputy("Contact info@acme.example, or for sales ben.berg@acme.example.")

    assert found is not None and found.email == "ben.berg@acme.example"


# --- on the real stack --------------------------------------------------------------------


REP = "kim"  # journeys.sales_team
REP_EMAIL = "kim@sales.nurture.example"


@dataclass(frozen=True)
class Mailed:
    """A lead at a company domain of its own, owned by `REP`, sent one journey email."""

    lead_id: str
    email: str
    first_name: str  # unique: finds the rep's notifications about this lead
    domain: str
    account_id: str
    return_path: str


async def mailed_lead(settings: Settings, sessions: async_sessionmaker) -> Mailed:
    tag = uuid.uuid4().hex[:10]
    domain, first_name = f"acme-{tag}.example", f"Ada{tag}"
    email = f"ada@{domain}"
    async with sessions() as session:
        account = Account(domain=domain, name=f"Acme {tag}", owner=REP)
        session.add(account)
        await session.flush()
        lead = Lead(
            email=email, first_name=first_name, company=account.name, consent_status="confirmed",
            owner=REP, account_id=account.id, timezone="Europe/Berlin",
        )  # fmt: skip
        session.add(lead)
        await session.commit()
        lead_id, account_id = lead.id, account.id
    configured = settings.model_copy(update={"bounce_domain": BOUNCE_DOMAIN})
    key = f"test/{uuid.uuid4()}"
    await ActivityEnvironment().run(
        EmailActivities(configured, sessions).send_email, request(lead_id, key)
    )
    async with sessions() as session:
        outbox_id = (
            await session.execute(select(OutboxEmail.id).where(OutboxEmail.idempotency_key == key))
        ).scalar_one()
    return_path = LinkTokens(settings.require_secret_key()).return_path(outbox_id, BOUNCE_DOMAIN)
    return Mailed(lead_id, email, first_name, domain, account_id, return_path)


def auto_reply(
    mailed: Mailed, body: str, written: datetime, message_id: str | None = None
) -> bytes:
    return (
        f"From: Ada <{mailed.email}>\r\nTo: {mailed.return_path}\r\n"
        "Subject: Automatic reply: Welcome\r\nAuto-Submitted: auto-replied\r\n"
        f"Date: {format_datetime(written)}\r\n"
        f"Message-ID: <{message_id or uuid.uuid4()}@{mailed.domain}>\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    ).encode()


async def notices_about(smtp: SmtpSink, mailed: Mailed) -> list[EmailMessage]:
    await asyncio.sleep(0.5)  # what else would come
    return [m for m in smtp.to(REP_EMAIL) if mailed.first_name in str(m["Subject"])]


async def lead_by_email(sessions: async_sessionmaker, email: str) -> Lead | None:
    async with sessions() as session:
        return (await session.execute(select(Lead).where(Lead.email == email))).scalar_one_or_none()


async def test_an_out_of_office_reply_holds_the_leads_journey_emails_until_its_return_date(
    settings: Settings, sessions: async_sessionmaker, worker: Worker, listener: int
) -> None:
    mailed = await mailed_lead(settings, sessions)
    written = datetime.now(UTC)
    back = (written + timedelta(days=10)).date()
    body = f"Thank you for your message. I will be back on {back:%d %B %Y}."

    await deliver(listener, mailed.return_path, auto_reply(mailed, body, written))

    lead = await eventually(
        lambda: lead_by_email(sessions, mailed.email),
        lambda found: found is not None and found.mail_held_until is not None,
    )
    assert lead is not None and lead.mail_held_until is not None
    held = hold_until(back, ZoneInfo("Europe/Berlin"))
    assert lead.mail_held_until == held
    # The journey's next email (a follow-up) is deferred until then, never dropped.
    follow_up = await ActivityEnvironment().run(
        EmailActivities(settings, sessions).send_email,
        request(mailed.lead_id, f"test/{uuid.uuid4()}").model_copy(update={"now": written}),
    )
    assert (follow_up.status, follow_up.retry_at) == ("deferred", held)
    assert "out of office" in (follow_up.reason or "")


async def test_the_deputy_becomes_a_lead_of_the_account_without_marketing_and_the_owner_is_told(
    settings: Settings,
    sessions: async_sessionmaker,
    worker: Worker,
    listener: int,
    smtp: SmtpSink,
) -> None:
    mailed = await mailed_lead(settings, sessions)
    deputy_email = f"grace.hopper@{mailed.domain}"
    body = (
        "Ich bin bis einschließlich 3. Januar nicht im Büro. In dringenden Fällen wenden Sie "
        f"sich bitte an meine Kollegin Grace Hopper ({deputy_email}) oder an info@{mailed.domain}."
    )

    await deliver(listener, mailed.return_path, auto_reply(mailed, body, datetime.now(UTC)))

    deputy = await eventually(lambda: lead_by_email(sessions, deputy_email), bool)
    assert deputy is not None
    assert (deputy.source, deputy.consent_status, deputy.account_id, deputy.owner) == (
        "out-of-office", "pending", mailed.account_id, REP
    )  # fmt: skip
    assert (deputy.first_name, deputy.last_name) == ("Grace", "Hopper")
    assert await lead_by_email(sessions, f"info@{mailed.domain}") is None
    [notice] = await eventually(lambda: notices_about(smtp, mailed), bool)
    assert deputy_email in body_text(notice, "plain")
    # No marketing mail until the deputy opts in: no double opt-in, no journey email.
    marketing = await ActivityEnvironment().run(
        EmailActivities(settings, sessions).send_email,
        request(deputy.id, f"test/{uuid.uuid4()}"),
    )
    assert marketing.status == "deferred" and "opt-in" in (marketing.reason or "")
    assert smtp.to(deputy_email) == []
    async with sessions() as session:
        enrolled = await session.execute(select(Enrollment).where(Enrollment.lead_id == deputy.id))
        assert enrolled.first() is None


async def test_a_second_auto_reply_naming_the_same_deputy_creates_no_second_lead(
    settings: Settings, sessions: async_sessionmaker, worker: Worker, listener: int
) -> None:
    mailed = await mailed_lead(settings, sessions)
    deputy_email = f"grace@{mailed.domain}"
    body = f"I am out of the office. Please contact {deputy_email}."
    first, second = f"{uuid.uuid4()}", f"{uuid.uuid4()}"

    await deliver(listener, mailed.return_path, auto_reply(mailed, body, datetime.now(UTC), first))
    await deliver(listener, mailed.return_path, auto_reply(mailed, body, datetime.now(UTC), second))

    for message_id in (first, second):
        await eventually(
            lambda message_id=message_id: stored(sessions, f"{message_id}@{mailed.domain}"),
            lambda rows: bool(rows) and rows[0].status == "processed",
        )
    async with sessions() as session:
        rows = await session.execute(select(Lead.id).where(Lead.email == deputy_email))
        assert len(rows.all()) == 1


async def test_a_persons_reply_tells_the_leads_owner_once(
    settings: Settings,
    sessions: async_sessionmaker,
    worker: Worker,
    listener: int,
    smtp: SmtpSink,
    temporal_client: Client,
) -> None:
    mailed = await mailed_lead(settings, sessions)
    message_id = f"{uuid.uuid4()}@{mailed.domain}"
    reply = (
        f"From: Ada <{mailed.email}>\r\nTo: {mailed.return_path}\r\nSubject: Re: Welcome\r\n"
        f"Message-ID: <{message_id}>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        "Sounds good, can we talk on Thursday?\r\n\r\n> Welcome to Nurture\r\n"
    ).encode()

    await deliver(listener, mailed.return_path, reply)
    await deliver(listener, mailed.return_path, reply)  # the relay's redelivery
    [row] = await eventually(
        lambda: stored(sessions, message_id),
        lambda rows: bool(rows) and rows[0].processed_at is not None,
    )
    # The activity run again (a retry after a crash): nothing new.
    lifecycle = LeadLifecycle(temporal_client, settings.task_queue)
    activities = InboundActivities(
        settings.require_secret_key(), sessions, lifecycle,
        settings=settings, notices=EmailActivities(settings, sessions),
    )  # fmt: skip
    await ActivityEnvironment().run(
        activities.process_inbound, ProcessInboundRequest(inbound_id=row.id)
    )

    [notice] = await notices_about(smtp, mailed)
    text = body_text(notice, "plain")
    assert "Thursday" in text and "Welcome to Nurture" not in text
    assert row.details["owner_told"] == REP


async def test_the_lead_view_shows_the_hold_and_the_deputy_in_the_timeline(
    settings: Settings,
    sessions: async_sessionmaker,
    worker: Worker,
    listener: int,
    api: httpx.AsyncClient,
) -> None:
    mailed = await mailed_lead(settings, sessions)
    written = datetime.now(UTC)
    back = (written + timedelta(days=5)).date()
    body = f"Back on {back:%d %B}. Please contact lin.wu@{mailed.domain} meanwhile."
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}

    await deliver(listener, mailed.return_path, auto_reply(mailed, body, written))

    answer = await eventually(
        lambda: api.get(f"/v1/leads/{mailed.lead_id}", headers=admin),
        # The view reads the lead, then its mail: wait for a read that saw both committed.
        lambda r: (
            r.json()["deliverability"]["mail_held_until"] is not None
            and any(e["kind"] == "mail" for e in r.json()["timeline"])
        ),
    )
    found = answer.json()
    [entry] = [e for e in found["timeline"] if e["kind"] == "mail"]
    assert "held until" in entry["summary"] and "deputy" in entry["summary"]
    assert entry["details"]["back_on"] == back.isoformat()
    assert entry["details"]["owner_told"] == REP
    assert found["deliverability"]["mail_held_until"] is not None
    assert found["deliverability"]["status"] == "active"  # away is not undeliverable
    deputy = (
        await api.get(f"/v1/leads/{entry['details']['deputy_lead_id']}", headers=admin)
    ).json()
    assert (deputy["source"], deputy["consent_status"]) == ("out-of-office", "pending")


async def test_the_owner_sees_the_out_of_office_and_the_deputy_in_the_sales_inbox(
    settings: Settings,
    sessions: async_sessionmaker,
    worker: Worker,
    listener: int,
    api_url: str,
) -> None:
    mailed = await mailed_lead(settings, sessions)
    deputy_email = f"noor.said@{mailed.domain}"
    body = f"I'm away. Please contact {deputy_email}."

    await deliver(listener, mailed.return_path, auto_reply(mailed, body, datetime.now(UTC)))
    await eventually(lambda: lead_by_email(sessions, deputy_email), bool)

    kim, sam = await signed_in(api_url, REP_KEYS["kim"]), await signed_in(api_url, REP_KEYS["sam"])
    try:
        mine, theirs = (await kim.get("/inbox")).text, (await sam.get("/inbox")).text
    finally:
        await kim.aclose()
        await sam.aclose()
    assert f'data-lead-id="{mailed.lead_id}" data-kind="auto_reply"' in mine
    assert deputy_email in mine
    assert mailed.lead_id not in theirs  # another rep's lead


# --- the hold in a running journey, on the time-skipping server ---------------------------


async def test_a_journey_sends_its_next_email_on_the_day_the_lead_is_back(
    time_skipping_env: WorkflowEnvironment, sessions: async_sessionmaker
) -> None:
    async with simulation_stack(
        env=time_skipping_env,
        sessions=sessions,
        overrides={"NURTURE_BOUNCE_DOMAIN": BOUNCE_DOMAIN, "NURTURE_QUIET_HOURS": "",
                   "NURTURE_FREQUENCY_CAP": ""},
    ) as stack:  # fmt: skip
        handler = InboundHandler(sessions, stack.client, stack.settings.task_queue, BOUNCE_DOMAIN)
        port = free_port()
        server = await serve(handler, "127.0.0.1", port)
        async with server:
            started = await time_skipping_env.get_current_time()
            email = new_email("held")
            async with sessions() as session:
                lead = Lead(email=email, first_name="Ada", consent_status="confirmed",
                            timezone="UTC")  # fmt: skip
                session.add(lead)
                await session.commit()
                lead_id = lead.id
            await start_journey(
                stack.client, sessions, task_queue=stack.settings.task_queue, lead_id=lead_id,
                definition=get_journey("welcome"),
            )  # fmt: skip
            welcome = await eventually(
                lambda: sent_rows(sessions, lead_id), lambda rows: len(rows) == 1
            )
            tokens = LinkTokens(stack.settings.require_secret_key())
            return_path = tokens.return_path(welcome[0].id, BOUNCE_DOMAIN)
            back = (started + timedelta(days=10)).date()
            mailed = Mailed(lead_id, email, "Ada", "example.com", "", return_path)
            body = f"I am out of the office until {back - timedelta(days=1):%d %B %Y}."
            await deliver(port, return_path, auto_reply(mailed, body, started))
            await eventually(
                lambda: lead_by_email(sessions, email),
                lambda found: found is not None and found.mail_held_until is not None,
            )

            # Three days on, the reminder is due: held.
            await time_skipping_env.sleep(timedelta(days=4))
            assert [r.step_id for r in await sent_rows(sessions, lead_id)] == ["welcome"]
            # Back on `back`: the reminder goes that day.
            await time_skipping_env.sleep(timedelta(days=7))
            rows = await eventually(
                lambda: sent_rows(sessions, lead_id), lambda rows: len(rows) == 2
            )
            handle = stack.client.get_workflow_handle(journey_workflow_id("welcome", lead_id))
            timeline = await handle.query(TIMELINE_QUERY, result_type=list[TimelineEntry])

    assert [r.step_id for r in rows] == ["welcome", "reminder"]
    reminder_at = rows[1].sent_at
    assert reminder_at is not None
    assert reminder_at.astimezone(UTC).date() == back
    assert any("out of office" in entry.what for entry in timeline)


async def sent_rows(sessions: async_sessionmaker, lead_id: str) -> list[OutboxEmail]:
    async with sessions() as session:
        rows = await session.execute(
            select(OutboxEmail)
            .where(OutboxEmail.lead_id == lead_id, OutboxEmail.status == "sent")
            .order_by(OutboxEmail.sent_at)
        )
        return list(rows.scalars())
