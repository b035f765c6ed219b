"""What the SMTP server receives, byte for byte: headers a mail client must read as they
are (RFC 2369 / RFC 8058 one-click unsubscribe) are never encoded or folded away."""

from __future__ import annotations

import re

import httpx
from temporalio.worker import Worker

from starter.dev.smtp_sink import SmtpSink
from tests.conftest import new_email
from tests.test_email_consent import enroll


def header_lines(raw: bytes) -> dict[bytes, bytes]:
    """The message's headers as received, unfolded, by lower-cased name."""
    head = raw.split(b"\r\n\r\n", 1)[0]
    unfolded = re.sub(rb"\r\n[ \t]+", b" ", head)
    lines = unfolded.split(b"\r\n")
    return {line.split(b":", 1)[0].lower(): line for line in lines}


async def test_list_unsubscribe_reaches_the_server_as_a_plain_ascii_url(
    api: httpx.AsyncClient, worker: Worker, smtp: SmtpSink
) -> None:
    email = new_email()
    await enroll(api, email, first_name="Ada")
    await smtp.wait_for(email, 1)

    [raw] = smtp.raw_to(email)

    headers = header_lines(raw)
    assert re.fullmatch(
        rb"List-Unsubscribe: <http://nurture\.example/u/[A-Za-z0-9_.\-]+>",
        headers[b"list-unsubscribe"],
    ), headers[b"list-unsubscribe"]
    assert headers[b"list-unsubscribe-post"] == b"List-Unsubscribe-Post: List-Unsubscribe=One-Click"


async def test_every_header_we_set_is_plain_ascii_unless_its_text_is_not(
    api: httpx.AsyncClient, worker: Worker, smtp: SmtpSink
) -> None:
    email = new_email()
    await enroll(api, email, first_name="Ada")
    await smtp.wait_for(email, 1)

    [raw] = smtp.raw_to(email)

    head = raw.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()
    assert all(len(line) <= 998 for line in head.split(b"\r\n"))
    headers = header_lines(raw)
    for name in (b"from", b"to", b"subject", b"message-id", b"list-unsubscribe"):
        assert b"=?" not in headers[name], headers[name]  # ASCII values are never encoded
    assert headers[b"subject"] == b"Subject: Welcome to Nurture Test, Ada"


async def test_a_non_ascii_subject_is_encoded_as_rfc_2047_requires(
    api: httpx.AsyncClient, worker: Worker, smtp: SmtpSink
) -> None:
    email = new_email()
    await enroll(api, email, first_name="Zoë")
    [parsed] = await smtp.wait_for(email, 1)

    [raw] = smtp.raw_to(email)

    assert b"=?utf-8?" in header_lines(raw)[b"subject"]
    assert parsed["Subject"] == "Welcome to Nurture Test, Zoë"
