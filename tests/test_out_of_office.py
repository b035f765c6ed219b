"""Out-of-office replies (issue 16): the return date and the deputy, read from real-world
phrasings (pure), then on the real stack — the listener, a worker, PostgreSQL, the SMTP
sink and, for the hold, the time-skipping server."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from journeys.out_of_office import Deputy, deputy_address, hold_until, reply_text, return_date

# Tuesday 1 December 2026, 10:00 UTC: when the replies below were written.
WRITTEN = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "back"),
    [
        # English
        ("I will be back on 14 December.", date(2026, 12, 14)),
        ("Thank you for your email. I'm back in the office on Monday 7th December.", date(2026, 12, 7)),
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
        ("Vielen Dank für Ihre Nachricht. Ich bin vom 20.12. bis 06.01. im Urlaub.", date(2027, 1, 7)),
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
        "Subject: Automatic reply\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        "<html><body><p>I'm back on <b>14 December</b>.</p><style>p{}</style></body></html>"
    ).encode()

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


def test_the_first_colleague_is_taken_after_skipping_the_others() -> None:
    found = deputy("Contact info@acme.example, or for sales ben.berg@acme.example.")

    assert found is not None and found.email == "ben.berg@acme.example"
