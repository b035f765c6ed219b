"""A real SMTP server (aiosmtpd) on loopback keeping what it receives (demo mailbox, test sink)."""

from __future__ import annotations

import asyncio
import socket
import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass
class SmtpSink:
    """Collects every message the server accepted."""

    messages: list[EmailMessage] = field(default_factory=list)
    # (recipients, the bytes exactly as the client sent them): for checks on the wire form.
    raw: list[tuple[list[str], bytes]] = field(default_factory=list)
    # (recipients, the envelope sender): where bounces of each message would go.
    envelopes: list[tuple[list[str], str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list
    ) -> str:
        # Like a real server with no such mailbox: lets tests and the demo try bounces.
        if address.lower().startswith("bounce-"):
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        message = message_from_bytes(envelope.original_content or b"", policy=policy.default)
        with self._lock:
            self.messages.append(message)
            self.raw.append((list(envelope.rcpt_tos), envelope.original_content or b""))
            self.envelopes.append((list(envelope.rcpt_tos), envelope.mail_from or ""))
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        """Messages addressed to `address`, in the order they arrived."""
        with self._lock:
            return [m for m in self.messages if m["To"] == address]

    def senders_to(self, address: str) -> list[str]:
        """The envelope senders (MAIL FROM) of the messages to `address`."""
        with self._lock:
            return [sender for rcpts, sender in self.envelopes if address in rcpts]

    def raw_to(self, address: str) -> list[bytes]:
        """The raw bytes of the messages to `address`, as received."""
        with self._lock:
            return [content for rcpts, content in self.raw if address in rcpts]

    async def wait_for(self, address: str, count: int, within: float = 20.0) -> list[EmailMessage]:
        """Wait until `count` messages to `address` arrived; fail with what did arrive."""
        deadline = asyncio.get_running_loop().time() + within
        while asyncio.get_running_loop().time() < deadline:
            found = self.to(address)
            if len(found) >= count:
                return found
            await asyncio.sleep(0.05)
        found = self.to(address)
        raise AssertionError(
            f"expected {count} message(s) to {address}, got {len(found)}: "
            f"{[m['Subject'] for m in found]}"
        )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def start_sink(host: str = "127.0.0.1", port: int | None = None) -> tuple[Controller, SmtpSink]:
    """Start an SMTP sink on `host` (a free port unless given); returns controller and sink."""
    sink = SmtpSink()
    controller = Controller(sink, hostname=host, port=port or free_port(host))
    controller.start()
    return controller, sink
