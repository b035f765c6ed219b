"""The inbound classifier meets hostile mail (hypothesis): malformed MIME, truncated
reports, huge headers, wrong charsets — it never raises, and always says what it saw."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from journeys.inbound_mail import InboundKind, classify

HEADER_NAMES = st.sampled_from(
    ["From", "To", "Subject", "Content-Type", "Auto-Submitted", "Precedence", "Message-ID",
     "Content-Transfer-Encoding", "X-Autoreply", "MIME-Version"]
)  # fmt: skip
CONTENT_TYPES = st.sampled_from(
    [b"multipart/report; report-type=delivery-status; boundary=\"B\"",
     b"multipart/report; report-type=feedback-report; boundary=\"B\"",
     b"message/delivery-status", b"text/plain; charset=utf-99", b"multipart/mixed",
     b"multipart/report; boundary=", b"text/plain"]
)  # fmt: skip


@st.composite
def hostile_mail(draw: st.DrawFn) -> bytes:
    headers = draw(st.lists(st.tuples(HEADER_NAMES, st.binary(max_size=3000)), max_size=8))
    head = b"".join(name.encode() + b": " + value + b"\r\n" for name, value in headers)
    content_type = b"Content-Type: " + draw(CONTENT_TYPES) + b"\r\n"
    body = draw(
        st.one_of(
            st.binary(max_size=2000),
            st.just(b"--B\r\nContent-Type: message/delivery-status\r\n\r\nStatus: 5.1.1\r\n"),
            st.just(b"--B\r\nContent-Type: message/delivery-status\r\n\r\nFinal-Recipient: rfc822"),
        )
    )
    return head + content_type + b"\r\n" + body


@settings(max_examples=300, deadline=None)
@given(hostile_mail())
def test_hostile_mail_is_classified_without_raising(raw: bytes) -> None:
    found = classify(raw)

    assert found.kind in set(InboundKind)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=5000))
def test_any_bytes_at_all_are_classified_without_raising(raw: bytes) -> None:
    assert classify(raw).kind in set(InboundKind)
