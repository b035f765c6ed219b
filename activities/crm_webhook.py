"""Signing and verifying CRM webhooks: HMAC-SHA256 over a timestamp and the raw body.

Header `X-Nurture-Signature: t=<unix seconds>,v1=<hex digest of "<t>.<body>">`, the scheme
Stripe and others use: the timestamp bounds replays, the digest binds the body.
"""

from __future__ import annotations

import hashlib
import hmac
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


def verify(body: bytes, header: str | None, secret: bytes, *, now: float | None = None) -> None:
    """Raise `SignatureInvalid` unless `header` signs `body` with `secret`, recently."""
    if not header:
        raise SignatureInvalid(f"missing {SIGNATURE_HEADER} header")
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
        digest = parts["v1"]
    except (KeyError, ValueError):
        raise SignatureInvalid(f"malformed {SIGNATURE_HEADER} header") from None
    current = time.time() if now is None else now
    if abs(current - timestamp) > TOLERANCE_SECONDS:
        raise SignatureInvalid("signature timestamp is too old or in the future")
    expected = sign(body, secret, timestamp=timestamp).partition(",v1=")[2]
    if not hmac.compare_digest(expected, digest):
        raise SignatureInvalid("signature does not match the body")
