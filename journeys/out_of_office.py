"""Reading an out-of-office reply (issue 16): when its writer is back, and whom it names
to contact instead. Pure: the body text in, a date and an address out; nothing here acts.

The return date is found with `dateparser` (English and German), relative to the moment
the reply was written, preferring dates in the future; only a date after that day and
within `HORIZON` counts (a reply naming a date two years ahead, a phone number read as a
date or a year-old auto-reply redelivered today gives no date, and nothing is held).
Numeric dates with dots are day-first (German: `05.01.2027`, `20.12.`); other dates, the
English reading (month first: `12/14`) is tried before the day-first one (`14/12`, "the
8th"). A date after *until*, *bis*,
*through* or *einschließlich* is the last day away, so the writer is back the day after;
after *back*, *zurück*, *wieder*, *ab* it is the day itself. Of several dates the latest
plausible one wins, preferring those a return or absence word stands before ("away from
20 December, back on 4 January").

A deputy's address is taken conservatively (see `deputy_address`): a person at the
writer's own organisation, never the writer, never our own domains, never a role or
no-reply mailbox.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from zoneinfo import ZoneInfo

from dateparser.search import search_dates
from email_validator import EmailNotValidError, validate_email

from journeys.accounts import FREE_MAIL_DOMAINS

# How far ahead a return date may lie to be believed.
HORIZON = timedelta(days=120)
# How much of the body is read (an auto-reply says what matters in its first lines).
MAX_TEXT = 4000

_LANGUAGES = ["en", "de"]
_MONTHS = (
    "January February March April May June July August September October November December"
).split()
_MONTH_NAMES = (
    r"jan(uary|uar)?|feb(ruary|ruar)?|m(ar|är|ae)(ch|z)?|apr(il)?|ma[iy]|jun[ei]?|jul[iy]?|"
    r"aug(ust)?|sep(t(ember)?)?|o[ck]t(ober)?|nov(ember)?|de[cz](ember)?"
)
_WEEKDAYS = (
    r"monday|tuesday|wednesday|thursday|friday|saturday|sunday|"
    r"montag|dienstag|mittwoch|donnerstag|freitag|samstag|sonnabend|sonntag"
)
# What a date's matched text must look like to be one (not a phone number, a time, "may").
_DATE_SHAPE = re.compile(
    rf"(\d.*\b({_MONTH_NAMES})\b|\b({_MONTH_NAMES})\b.*\d|\d{{1,4}}[./-]\d{{1,2}}|"
    rf"\d{{1,2}}(st|nd|rd|th)\b|\b({_WEEKDAYS})\b|\btomorrow\b|\bübermorgen\b)",
    re.IGNORECASE,
)
# The word nearest before a date says what it is: the last day away (back the day after) …
_UNTIL_WORDS = (
    r"until|till|til|through|thru|inclusive|including|bis|einschlie(ß|ss)lich|inklusive|inkl"
)
# … or the day of return.
_BACK_WORDS = r"back|return(ing|s)?|from|on|zurück|wieder|ab|am|erreichbar|vom|dem|den"
_CUE = re.compile(rf"\b(?:(?P<until>{_UNTIL_WORDS})|(?P<back>{_BACK_WORDS}))\b", re.IGNORECASE)
_DOTTED_WITH_YEAR = re.compile(r"\b(\d{1,2})\.\s?(\d{1,2})\.\s?(\d{4}|\d{2})\b")
_DOTTED_NO_YEAR = re.compile(r"\b(\d{1,2})\.(\d{1,2})\.(?!\s?\d)")
# Where the quoted original begins: nothing after it is the writer's own text.
_QUOTE_START = re.compile(
    r"^(-{2,}\s*(original message|ursprüngliche nachricht|weitergeleitete nachricht)|"
    r"on .{4,200} wrote:|am .{4,200} schrieb .{1,200}:|(from|von):\s)",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"(?<=[^\d\s][.!?])\s+|\n+")
_ADDRESS = re.compile(r"[A-Za-z0-9._%+'-]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}")
# Mailboxes that are no person to nurture: automata and shared role accounts.
_NOT_A_PERSON = re.compile(
    r"^(no-?reply|do-?not-?reply|donotreply|mailer-daemon|postmaster|hostmaster|webmaster|"
    r"abuse|bounces?|bounce[+-].*|info|office|support|help|helpdesk|service|kontakt|contact|"
    r"sales|vertrieb|hello|hallo|team|admin|mail|empfang|zentrale|reception|marketing|"
    r"newsletter|noreply[+-].*|auto-?reply|autoresponder)$",
    re.IGNORECASE,
)


def reply_text(raw: bytes) -> str:
    """The writer's own text of a reply: its plain body (else its HTML, tags removed),
    without the quoted original; at most `MAX_TEXT` characters. Never raises."""
    try:
        message = message_from_bytes(raw, policy=policy.default)
        assert isinstance(message, EmailMessage)
        part = message.get_body(preferencelist=("plain", "html"))
        if part is None:
            return ""
        body = str(part.get_content())
        if part.get_content_type() == "text/html":
            body = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", body)
            body = html.unescape(re.sub(r"(?s)<br\s*/?>|</p>|</div>", "\n", body))
            body = re.sub(r"(?s)<[^>]*>", " ", body)
    except Exception:  # hostile input: no text is no date and no deputy
        return ""
    lines: list[str] = []
    for line in body.splitlines():
        stripped = line.strip()
        if _QUOTE_START.match(stripped):
            break
        if not stripped.startswith(">"):
            lines.append(stripped)
    return "\n".join(lines)[:MAX_TEXT]


@dataclass(frozen=True)
class _Candidate:
    day: date
    cued: bool  # a return or absence word stands right before it


def return_date(text: str, written_at: datetime, horizon: timedelta = HORIZON) -> date | None:
    """The day the writer of `text` (an out-of-office reply written at `written_at`) is
    back, or None when it names no plausible one: after the day it was written, within
    `horizon`."""
    base = written_at.replace(tzinfo=None)
    candidates: list[_Candidate] = []
    for sentence in _SENTENCE_END.split(_normalise(text, base)):
        candidates.extend(_candidates(sentence, base, horizon))
    cued = [c for c in candidates if c.cued]
    chosen = max(cued or candidates, key=lambda c: c.day, default=None)
    return chosen.day if chosen else None


def _normalise(text: str, base: datetime) -> str:
    """Day-first dotted dates in words dateparser reads one way only."""

    def with_year(match: re.Match[str]) -> str:
        day, month, year = (int(g) for g in match.groups())
        year = year + 2000 if year < 100 else year
        if not (1 <= month <= 12 and 1 <= day <= 31):
            return match.group(0)
        return f"{year:04d}-{month:02d}-{day:02d}"

    def without_year(match: re.Match[str]) -> str:
        day, month = (int(g) for g in match.groups())
        if not (1 <= month <= 12 and 1 <= day <= 31):
            return match.group(0)
        return f"{day} {_MONTHS[month - 1]}"

    return _DOTTED_NO_YEAR.sub(without_year, _DOTTED_WITH_YEAR.sub(with_year, text))


def _candidates(sentence: str, base: datetime, horizon: timedelta) -> list[_Candidate]:
    if not sentence.strip():
        return []
    found: list[_Candidate] = []
    # English readings first (month first: `12/14`), then day first (`14/12`, "the 8th").
    for order in (None, "DMY"):
        settings: dict[str, object] = {
            "PREFER_DATES_FROM": "future",
            "RELATIVE_BASE": base,
            "RETURN_AS_TIMEZONE_AWARE": False,
        }
        if order:
            settings["DATE_ORDER"] = order
        try:
            matches = search_dates(sentence, languages=_LANGUAGES, settings=settings) or []
        except Exception:  # dateparser on hostile text: no date rather than a crash
            matches = []
        for matched, moment in matches:
            if not _DATE_SHAPE.search(matched):
                continue
            day = moment.date()
            cue = _cue(sentence[: max(sentence.find(matched), 0)][-30:])
            if cue == "until":
                day += timedelta(days=1)  # the last day away: back the day after
            if base.date() < day <= (base + horizon).date():
                found.append(_Candidate(day, cue is not None))
        if found:
            break  # the first reading that gives a plausible date is taken
    return found


def _cue(before: str) -> str | None:
    """`until` or `back`, as the nearest cue word before a date says; None: neither."""
    cues = list(_CUE.finditer(before))
    if not cues:
        return None
    return "until" if cues[-1].group("until") else "back"


def hold_until(day: date, zone: ZoneInfo) -> datetime:
    """The moment a lead back on `day` may be mailed again: the start of that day where it
    lives (send windows then move it to the morning)."""
    return datetime.combine(day, time.min, tzinfo=zone)


# --- the deputy -------------------------------------------------------------------------


@dataclass(frozen=True)
class Deputy:
    """A person an out-of-office reply names to contact instead."""

    email: str
    first_name: str | None = None
    last_name: str | None = None


def deputy_address(
    text: str,
    *,
    writer: str,
    organisation_domains: frozenset[str],
    own_domains: frozenset[str],
) -> Deputy | None:
    """The first address in `text` that is a colleague of `writer` (the lead whose
    auto-reply this is): at one of `organisation_domains` (the writer's and its account's
    domain, or a subdomain or parent of one), not the writer, not at one of `own_domains`
    (our sender and bounce domains), not a role or automated mailbox (`info@`, `noreply@`,
    …: no person to nurture). Anyone else — an agency, a private address — is not taken.
    A free-mail domain (`gmail.com`, …) is no organisation: a lead at gmail.com has no
    colleagues there, so no gmail address becomes its deputy."""
    writer = writer.strip().lower()
    organisations = {d.lower().strip(".") for d in organisation_domains if d}
    organisations -= set(FREE_MAIL_DOMAINS)
    ours = {d.lower().strip(".") for d in own_domains if d}
    for found in _ADDRESS.findall(text):
        try:
            address = validate_email(found, check_deliverability=False).normalized.lower()
        except EmailNotValidError:
            continue
        local, _, domain = address.rpartition("@")
        if address == writer or _NOT_A_PERSON.match(local):
            continue
        if any(_related(domain, d) for d in ours):
            continue
        if any(_related(domain, d) for d in organisations):
            return Deputy(address, *_names_of(local))
    return None


def _related(domain: str, other: str) -> bool:
    """The same domain, or one a subdomain of the other (`de.acme.example`, `acme.example`)."""
    return domain == other or domain.endswith("." + other) or other.endswith("." + domain)


def _names_of(local: str) -> tuple[str | None, str | None]:
    """`anna.schmidt` → Anna, Schmidt; anything less regular names nobody."""
    parts = re.split(r"[._]", local)
    if len(parts) == 2 and all(re.fullmatch(r"[a-zäöüß-]{2,40}", p) for p in parts):
        return parts[0].capitalize(), parts[1].capitalize()
    return None, None
