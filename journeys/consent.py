"""Consent as pure rules: the statuses a lead's marketing consent can be in, the
suppression reasons that make an opt-out stick, the keyed hash that remembers a suppressed
address without keeping it, and what a claim of consent does to a lead.

The rule that matters most: **only the lead's own act lifts a suppression.** An import, an
API call, a backend's form relay or a CRM sync may *claim* consent; for a suppressed lead
that claim is recorded as evidence of the claim, never as consent. The lead's own act is a
form filled in on Nurture's hosted page (which starts a double opt-in) followed by the
click on the confirmation link that email carries.
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

import idna

# A pending lead is reminded once, this long after the confirmation email …
DOI_REMINDER_AFTER = timedelta(days=2)
# … and its request expires this long after it: no marketing email until it opts in again.
DOI_EXPIRES_AFTER = timedelta(days=7)


class ConsentStatus(StrEnum):
    """A lead's marketing consent. Only `confirmed` receives marketing email."""

    PENDING = "pending"  # double opt-in sent, not confirmed yet
    CONFIRMED = "confirmed"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"  # a permanent delivery failure
    COMPLAINED = "complained"  # marked as spam (a feedback-loop report)
    SUPPRESSED = "suppressed"  # put on the suppression list by hand
    EXPIRED = "expired"  # a double opt-in never confirmed
    ERASED = "erased"


class SuppressionReason(StrEnum):
    """Why an address is on the suppression list (each is also the lead's status)."""

    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    SUPPRESSED = "suppressed"


# Statuses in which no marketing email goes out, checked again at the moment of sending.
NO_MARKETING = frozenset(
    {
        ConsentStatus.UNSUBSCRIBED,
        ConsentStatus.BOUNCED,
        ConsentStatus.COMPLAINED,
        ConsentStatus.SUPPRESSED,
        ConsentStatus.EXPIRED,
        ConsentStatus.ERASED,
    }
)


class ConsentAction(StrEnum):
    """What a `consent_records` row records."""

    REQUESTED = "requested"  # a double opt-in started
    RESUBSCRIBE_REQUESTED = "resubscribe_requested"  # …by a suppressed lead's own form fill
    CONFIRMED = "confirmed"  # the lead clicked the confirmation link
    IMPORTED = "imported"  # an integrator said the lead confirmed elsewhere
    OPTED_IN = "opted_in"  # a single opt-in form
    CLAIM_REFUSED = "claim_refused"  # a claim of consent for a suppressed lead: evidence only
    REMINDED = "reminded"
    EXPIRED = "expired"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    ERASED = "erased"


class ClaimSource(StrEnum):
    """Who asks for a lead to be mailed: its own act, or somebody else's word."""

    INTEGRATION = "integration"  # API enrollment, bulk import, backend form relay, CRM
    OWN_FORM_FILL = "own_form_fill"  # the hosted form, filled in by the person


@dataclass(frozen=True)
class Claim:
    """What an enrollment or form says about consent: nothing, a request for a double
    opt-in, or that the lead already confirmed (`confirmed_action` says how)."""

    source: ClaimSource
    given: bool  # any consent given at all (an enrollment may carry none)
    confirmed: bool = False
    confirmed_action: ConsentAction = ConsentAction.IMPORTED


@dataclass(frozen=True)
class ConsentDecision:
    """What a claim does: the status after, the record to write (None: none), whether a
    double opt-in starts, and the suppression that held (None: none)."""

    status: ConsentStatus
    record: ConsentAction | None
    start_double_opt_in: bool
    suppressed: SuppressionReason | None


def decide(
    status: ConsentStatus | None, suppression: SuppressionReason | None, claim: Claim
) -> ConsentDecision:
    """The consent a lead has after `claim`, given its status (None: a lead created just
    now) and its address's entry on the suppression list.

    A suppressed address stays suppressed whatever an integration claims (the claim is
    recorded as `claim_refused`); the person's own form fill starts a double opt-in whose
    confirmation click is the only thing that lifts it.
    """
    held = suppression or (suppression_of_status(status) if status is not None else None)
    if held is not None:
        if claim.source is ClaimSource.OWN_FORM_FILL:
            return ConsentDecision(
                ConsentStatus.PENDING, ConsentAction.RESUBSCRIBE_REQUESTED, True, held
            )
        # Kept: a suppressed status, or a re-subscription the lead itself started. Anything
        # else (a lead new for an erased address) takes the suppression's status.
        keep = status is not None and (
            status is ConsentStatus.PENDING or suppression_of_status(status) is not None
        )
        kept = status if keep and status is not None else ConsentStatus(held)
        record = ConsentAction.CLAIM_REFUSED if claim.given or kept != status else None
        return ConsentDecision(kept, record, False, held)
    if status is ConsentStatus.CONFIRMED:
        return ConsentDecision(status, None, False, None)
    if claim.confirmed:
        return ConsentDecision(ConsentStatus.CONFIRMED, claim.confirmed_action, False, None)
    return ConsentDecision(ConsentStatus.PENDING, ConsentAction.REQUESTED, True, None)


def suppression_of_status(status: str) -> SuppressionReason | None:
    """The suppression a consent status stands for (`unsubscribed` …), or None."""
    try:
        return SuppressionReason(status)
    except ValueError:
        return None


def normalise_address(email: str) -> str:
    """The form of an address the suppression list hashes: trimmed, Unicode NFC, lower
    case, the domain in its ASCII (IDNA) form — `ada@bücher.example`, as stored by older
    versions, and `ada@xn--bcher-kva.example` are one person, one entry."""
    local, at, domain = unicodedata.normalize("NFC", email.strip()).lower().rpartition("@")
    try:
        domain = idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError:
        pass  # not a name IDNA knows: hashed as it is
    return f"{local}{at}{domain}"


def address_hash(secret: str, email: str) -> str:
    """HMAC-SHA256 of the normalised address under a key derived from the secret: the
    suppression list's key. Without the secret, nobody can test a guessed address."""
    key = hmac.new(secret.encode(), b"nurture.suppression-list.v1", hashlib.sha256).digest()
    return hmac.new(key, normalise_address(email).encode(), hashlib.sha256).hexdigest()
