"""Signing and verifying CRM webhooks: HMAC-SHA256 over a timestamp and the raw body.

Header `X-Nurture-Signature: t=<unix seconds>,v1=<hex digest of "<t>.<body>">`, the scheme
Stripe and others use: the timestamp bounds replays, the digest binds the body.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time

SIGNATURE_HEADER = "X-Nurture-Signature"
# Signatures older (or newer) than this are refused: a captured request can't be replayed later.
TOLERANCE_SECONDS = 300


class SignatureInvalid(ValueError):
    """The signature header is missing, malformed, stale or does not match the body."""


def sign(body: bytes, secret: bytes, *, timestamp: int | None = None) -> str:
    """The signature header value for `body`."""
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


# `t=<1 to 12 digits>,v1=<64 hex digits>`: anything else is malformed before it is parsed, so
# no input reaches int() or compare_digest that could make them raise.
_HEADER = re.compile(r"t=([0-9]{1,12}),v1=([0-9a-f]{64})")


def verify(body: bytes, header: str | None, secret: bytes, *, now: float | None = None) -> str:
    """Raise `SignatureInvalid` unless `header` signs `body` with `secret`, recently; the
    digest, which names this signed request (a replay carries the same one)."""
    if not header:
        raise SignatureInvalid(f"missing {SIGNATURE_HEADER} header")
    found = _HEADER.fullmatch(header.strip())
    if found is None:
        raise SignatureInvalid(f"malformed {SIGNATURE_HEADER} header: expected t=…,v1=…")
    timestamp, digest = int(found.group(1)), found.group(2)
    current = time.time() if now is None else now
    if abs(current - timestamp) > TOLERANCE_SECONDS:
        raise SignatureInvalid("signature timestamp is too old or in the future")
    expected = sign(body, secret, timestamp=timestamp).partition(",v1=")[2]
    if not hmac.compare_digest(expected, digest):
        raise SignatureInvalid("signature does not match the body")
    return digest
