"""SMTP delivery that commits "sent" at the last possible moment, before the final dot.

The classic outbox leaves one window open: the server accepted the message (250 after the
terminating ".") and the worker died before recording it, so the retry sends it again.
Here the message body goes out first; then the caller's `commit` marks the row sent and
writes the "." that lets the server accept it in the same synchronous step as the COMMIT
is written (`db.commit_point`). A crash before that leaves the row pending and the server
with an incomplete DATA it discards: the retry sends once. What remains is the gap
between two system calls. A failure reply to the dot (the worker is alive to see it)
calls `revert` and raises. A COMMIT that fails after the dot went out (the database
restarting) raises `CommitOutcomeUnknown`: once the server has accepted the message,
`confirm` records it as sent again.

aiosmtplib has no public API for stopping before the dot; this drives the DATA phase with
its protocol object (pinned to aiosmtplib 5.x in pyproject.toml, covered by the tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.policy
import re
import select
from collections.abc import Awaitable, Callable
from email.message import EmailMessage

import aiosmtplib
from aiosmtplib import SMTPResponse, SMTPStatus
from aiosmtplib.protocol import SMTPProtocol

from activities.dkim_signing import signer_for
from db.commit_point import CommitOutcomeUnknown, SocketWrite, WriteFailedAfterCommit
from starter.settings import Settings

_LINE_START_DOT = re.compile(rb"(?m)^\.")
# How a message goes on the wire: CRLF, and RFC 5322's hard limit of 998 characters a
# line. The default 78 made the email package fold a long header value without spaces
# (the List-Unsubscribe URL) into an RFC 2047 encoded-word, which RFC 2369/8058 forbid
# there: Gmail and Yahoo then show no unsubscribe button. Headers with spaces still fold
# at spaces past 998, and non-ASCII text (a Subject) is still encoded as it must be.
WIRE_POLICY = email.policy.SMTP.clone(max_line_length=998)
FLUSH_TIMEOUT_SECONDS = 30.0


class PermanentFailure(Exception):
    """The server refused the message for good (5xx). `about_recipient`: the refusal is
    about the address — a 5xx to RCPT, or an enhanced status 5.1.x (bad mailbox) after the
    data — and the address bounces. Any other 5xx (the sender refused, the content or a
    policy) is about the message: retrying won't help, but the address is not to blame."""

    def __init__(self, code: int, message: str, *, about_recipient: bool) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.about_recipient = about_recipient


async def _written_out(protocol: SMTPProtocol, data: bytes) -> None:
    """Write `data` and wait until the transport has handed all of it to the kernel. What
    the socket doesn't take at once waits in asyncio's own buffer, which a killed process
    loses: were the dot queued behind it at the commit point, the COMMIT could go out and
    the message never arrive (the kernel's buffer is delivered even after a SIGKILL)."""
    transport = protocol.transport
    assert isinstance(transport, asyncio.WriteTransport)
    transport.set_write_buffer_limits(high=0)  # pause at any byte buffered, resume at none
    protocol.write(data)
    async with asyncio.timeout(FLUSH_TIMEOUT_SECONDS):  # the server stopped reading
        await protocol._drain_helper()  # aiosmtplib's flow control (pinned 5.x)
        # All of it in the kernel may still mean a full kernel buffer (a slow reader): the
        # dot's `send` would then fail and the dot wait in asyncio's buffer after the
        # COMMIT — lost to a kill. Wait for room (the commit point checks it again).
        while True:
            if _has_room(transport):
                return
            await asyncio.sleep(0.001)  # polled: the transport owns the socket's writer


def _has_room(transport: asyncio.WriteTransport) -> bool:
    """Whether the transport's socket would take a few bytes now (True where it can't be
    told: TLS writes go through the transport anyway)."""
    sock = transport.get_extra_info("socket")
    if sock is None or transport.is_closing():
        return True
    poller = select.poll()  # not select.select: it refuses descriptors past 1023
    poller.register(sock.fileno(), select.POLLOUT)
    return bool(poller.poll(0))


def _dot_for(protocol: SMTPProtocol) -> Callable[[], None]:
    """The end of the message: raw bytes for the socket where it is a plain one whose
    transport buffers nothing (the commit point writes them with the COMMIT), else a
    write through the transport (TLS)."""
    transport = protocol.transport
    assert isinstance(transport, asyncio.WriteTransport)
    plain = transport.get_extra_info("sslcontext") is None and not protocol._over_ssl
    if transport.get_extra_info("socket") is None or not plain:
        return lambda: protocol.write(b".\r\n")

    def socket_now() -> int | None:
        # Read at the commit point: a descriptor kept from earlier could by then name
        # another connection, had this one closed.
        if protocol.transport is not transport or transport.is_closing():
            return None
        if transport.get_write_buffer_size() or not _has_room(transport):
            return None  # the dot could not go out at once: nothing is committed
        sock = transport.get_extra_info("socket")
        return None if sock is None else int(sock.fileno())

    return SocketWrite(socket=socket_now, data=b".\r\n", fallback=protocol.write)


def _raise_for(response: SMTPResponse) -> None:
    if 500 <= response.code < 600:
        mailbox = response.message.lstrip().startswith("5.1.")
        raise PermanentFailure(response.code, response.message, about_recipient=mailbox)
    raise aiosmtplib.SMTPResponseException(response.code, response.message)


def connect(settings: Settings) -> aiosmtplib.SMTP:
    """An SMTP client for the configured server (not yet connected: `async with` it, then
    log in with `log_in`); one connection carries many messages (`send_on`)."""
    return aiosmtplib.SMTP(
        hostname=settings.smtp_host,
        port=settings.smtp_port,
        start_tls=settings.smtp_starttls,
        timeout=30,
    )


async def log_in(client: aiosmtplib.SMTP, settings: Settings) -> None:
    """Authenticate when credentials are configured."""
    if settings.smtp_username and settings.smtp_password:
        await client.login(settings.smtp_username, settings.smtp_password.get_secret_value())


async def deliver(
    settings: Settings,
    message: EmailMessage,
    *,
    commit: Callable[[Callable[[], None]], Awaitable[None]],
    revert: Callable[[], Awaitable[None]],
    confirm: Callable[[], Awaitable[None]],
    envelope_from: str | None = None,
) -> None:
    """Send `message` on a connection of its own (`send_on`)."""
    async with connect(settings) as client:
        await log_in(client, settings)
        await send_on(
            client, settings, message, commit=commit, revert=revert, confirm=confirm,
            envelope_from=envelope_from,
        )  # fmt: skip


def wire_bytes(settings: Settings, message: EmailMessage) -> bytes:
    """The message as it goes on the wire: CRLF, DKIM-signed when configured, dot-stuffed."""
    body = message.as_bytes(policy=WIRE_POLICY)
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    signer = signer_for(
        settings.dkim_domain, settings.dkim_selector, settings.dkim_private_key_file
    )
    if signer is not None:
        body = signer.sign(body)
    return _LINE_START_DOT.sub(b"..", body)


async def send_on(
    client: aiosmtplib.SMTP,
    settings: Settings,
    message: EmailMessage,
    *,
    commit: Callable[[Callable[[], None]], Awaitable[None]],
    revert: Callable[[], Awaitable[None]],
    confirm: Callable[[], Awaitable[None]],
    envelope_from: str | None = None,
) -> None:
    """Send `message` on the open connection `client`; after the body, `commit(send_dot)`
    records it as sent and calls `send_dot` as its COMMIT goes out
    (`db.commit_point.commit_then`). `revert` undoes that record when the server refuses
    the message; `confirm` records it again when the COMMIT's outcome was unknown and the
    server accepted the message. A refused envelope leaves the connection reusable (RSET);
    any other failure may leave it unusable: the caller opens a new one."""
    sender = message["From"]
    recipient = message["To"]
    body = wire_bytes(settings, message)
    stage = "MAIL"
    try:
        await client.mail(envelope_from or aiosmtplib.email.extract_sender(message) or sender)
        stage = "RCPT"
        await client.rcpt(recipient)
    except aiosmtplib.SMTPResponseException as exc:
        with contextlib.suppress(aiosmtplib.SMTPException, OSError):
            await client.rset()  # the connection stays usable for the next message
        if 500 <= exc.code < 600:
            raise PermanentFailure(exc.code, exc.message, about_recipient=stage == "RCPT") from None
        raise
    protocol = client.protocol
    assert protocol is not None and protocol.transport is not None
    start = await client.execute_command(b"DATA")
    if start.code != SMTPStatus.start_input:
        _raise_for(start)
    await _written_out(protocol, body)

    protocol._response_pending = True  # the reply to the dot is expected (aiosmtplib 5)
    send_dot = _dot_for(protocol)

    try:
        await commit(send_dot)
        outcome_unknown = False
    except CommitOutcomeUnknown:
        outcome_unknown = True
    except WriteFailedAfterCommit:  # recorded as sent, never sent: undo, then retry
        await revert()
        raise
    try:
        reply = await protocol.read_response(timeout=30)
    except Exception:
        await revert()
        raise
    if reply.code != SMTPStatus.completed:
        await revert()
        _raise_for(reply)
    if outcome_unknown:
        await confirm()
