"""What a message that came back is: a delivery status notification (RFC 3464), a
complaint (ARF, RFC 5965), an automatic reply (RFC 3834, out-of-office), or a person's
reply. Pure parsing (the `email` package and `flufl.bounce`); nothing here acts on it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage, Message
from enum import StrEnum

from flufl.bounce import all_failures


class InboundKind(StrEnum):
    """The closed set of what an inbound message can be."""

    BOUNCE = "bounce"  # a delivery status notification
    COMPLAINT = "complaint"  # a feedback-loop (ARF) report
    AUTO_REPLY = "auto_reply"  # out-of-office and other automatic answers
    REPLY = "reply"  # a person answered
    UNPARSEABLE = "unparseable"  # quarantined, never dropped
    # From an email provider's webhook (journeys/esp_feedback.py): recorded, nothing done.
    DELIVERED = "delivered"  # the receiving server took the message
    OTHER = "other"  # an open, a click, a type we don't know


@dataclass(frozen=True)
class DeliveryStatus:
    """One recipient's status in a DSN: `5.1.1` is permanent, `4.x.x` transient."""

    recipient: str
    status: str
    action: str = ""
    diagnostic: str = ""

    @property
    def permanent(self) -> bool:
        return self.status.startswith("5")


@dataclass(frozen=True)
class Classification:
    """What the message is, with the evidence it carries."""

    kind: InboundKind
    statuses: tuple[DeliveryStatus, ...] = ()
    permanent: frozenset[str] = field(default_factory=frozenset)
    temporary: frozenset[str] = field(default_factory=frozenset)
    subject: str = ""
    reason: str = ""

    @property
    def permanent_failure(self) -> bool:
        """A DSN saying delivery failed for good (its status, else flufl.bounce's reading)."""
        if self.statuses:
            return any(s.permanent for s in self.statuses)
        return bool(self.permanent)


_AUTO_SUBJECTS = re.compile(
    r"(out of (the )?office|automatic reply|auto(matic)?[- ]?reply|abwesenheit|"
    r"automatische antwort|nicht im b(ü|ue)ro|urlaub)",
    re.IGNORECASE,
)


def classify(raw: bytes) -> Classification:
    """Classify `raw` (the message as received); never raises: what can't be read is
    `UNPARSEABLE`, with the reason."""
    try:
        message = message_from_bytes(raw, policy=policy.default)
        assert isinstance(message, EmailMessage)
        return _classify(message)
    except Exception as exc:  # hostile input: any parser failure is a quarantine, not a crash
        return Classification(InboundKind.UNPARSEABLE, reason=f"{type(exc).__name__}: {exc}"[:300])


def _classify(message: EmailMessage) -> Classification:
    subject = str(message.get("Subject", ""))[:300]
    content_type = message.get_content_type()
    report_type = str(message.get_param("report-type", "") or "").lower()
    if content_type == "multipart/report" and report_type == "feedback-report":
        return Classification(InboundKind.COMPLAINT, subject=subject)
    statuses = _delivery_statuses(message)
    temporary, permanent = _failures(message)
    if statuses or permanent or temporary or report_type == "delivery-status":
        return Classification(InboundKind.BOUNCE, statuses, permanent, temporary, subject=subject)
    if _is_automatic(message, subject):
        return Classification(InboundKind.AUTO_REPLY, subject=subject)
    return Classification(InboundKind.REPLY, subject=subject)


def _failures(message: Message) -> tuple[frozenset[str], frozenset[str]]:
    temporary, permanent = all_failures(message)
    return (
        frozenset(a.decode(errors="replace").lower() for a in temporary),
        frozenset(a.decode(errors="replace").lower() for a in permanent),
    )


def _delivery_statuses(message: Message) -> tuple[DeliveryStatus, ...]:
    """The per-recipient blocks of a `message/delivery-status` part."""
    found: list[DeliveryStatus] = []
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        payload = part.get_payload()
        blocks = payload if isinstance(payload, list) else []
        for block in blocks:
            if not isinstance(block, Message):
                continue
            recipient = str(block.get("Final-Recipient") or block.get("Original-Recipient") or "")
            status = str(block.get("Status") or "").strip()
            if recipient and status:
                found.append(
                    DeliveryStatus(
                        recipient=recipient.partition(";")[2].strip().lower() or recipient,
                        status=status[:20],
                        action=str(block.get("Action") or "").strip()[:40],
                        diagnostic=" ".join(str(block.get("Diagnostic-Code") or "").split())[:300],
                    )
                )
    return tuple(found)


def _is_automatic(message: Message, subject: str) -> bool:
    auto_submitted = str(message.get("Auto-Submitted", "no")).strip().lower()
    precedence = str(message.get("Precedence", "")).strip().lower()
    return (
        auto_submitted not in ("", "no")
        or message.get("X-Autoreply") is not None
        or message.get("X-Autorespond") is not None
        or precedence in ("auto_reply", "bulk", "junk")
        or bool(_AUTO_SUBJECTS.search(subject))
    )
