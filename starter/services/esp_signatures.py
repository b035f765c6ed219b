"""Verifying email providers' webhooks (issue 16, point 4), each the way its provider
documents it:

- Amazon SES through SNS: the SNS message signature (SignatureVersion 1: RSA SHA1,
  2: RSA SHA256) over the canonical string of the message's fields, with the certificate
  at `SigningCertURL` — taken only from `https://sns.<region>.amazonaws.com/…` (AWS's
  rule), fetched once and cached; and only for topics the operator allowed.
- SendGrid's Signed Event Webhook: ECDSA P-256 / SHA-256 over `timestamp + raw body`.
- Mailgun: HMAC-SHA256 of `timestamp + token` with the webhook signing key; the signature
  doesn't cover the body, so a stale timestamp is refused and each token taken once.
- Postmark signs nothing: it recommends HTTP basic auth in the webhook URL, compared here
  in constant time.

Crypto is `cryptography`'s; the one I/O (fetching an SNS certificate) is injectable.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from starter.services.crm_signatures import TOLERANCE_SECONDS

SENDGRID_SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
# Mailgun's timestamps older (or newer) than this are refused: the same window as the CRM's.
MAILGUN_TOLERANCE_SECONDS = TOLERANCE_SECONDS
# The SNS certificate host (AWS's own SDK validators use this rule; `.cn` for China).
_SNS_HOST = re.compile(r"sns\.[a-z0-9-]{3,}\.amazonaws\.com(\.cn)?")
MAX_CERTIFICATE_BYTES = 64 * 1024


class SignatureInvalid(ValueError):
    """A webhook that isn't signed, is badly signed or stale; `field` names what failed."""

    def __init__(self, field: tuple[str, ...], message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class TopicNotAllowed(ValueError):
    """A genuine SNS message, but from a topic this deployment doesn't take."""


# --- SendGrid


def sendgrid_public_key(text: str) -> ec.EllipticCurvePublicKey:
    """The verification key as SendGrid shows it (base64 DER), or PEM; ValueError if not
    an elliptic-curve public key."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode())
        else:
            key = serialization.load_der_public_key(base64.b64decode(text, validate=True))
    except (ValueError, binascii.Error, TypeError):
        raise ValueError("not a public key (base64 DER or PEM)") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("not an elliptic-curve (ECDSA) public key")
    return key


def verify_sendgrid(
    body: bytes, signature: str | None, timestamp: str | None, key: ec.EllipticCurvePublicKey
) -> None:
    """Raise `SignatureInvalid` unless `signature` signs `timestamp + body` with `key`.

    No freshness window: the signature binds the body, and a replayed body carries the same
    `sg_event_id`s, which are stored once anyway."""
    if not signature:
        raise SignatureInvalid(
            ("header", SENDGRID_SIGNATURE_HEADER.lower()), f"missing {SENDGRID_SIGNATURE_HEADER}"
        )
    if not timestamp:
        raise SignatureInvalid(
            ("header", SENDGRID_TIMESTAMP_HEADER.lower()), f"missing {SENDGRID_TIMESTAMP_HEADER}"
        )
    try:
        decoded = base64.b64decode(signature, validate=True)
        key.verify(decoded, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError, binascii.Error):
        raise SignatureInvalid(
            ("header", SENDGRID_SIGNATURE_HEADER.lower()),
            "the signature does not verify with SENDGRID_WEBHOOK_PUBLIC_KEY",
        ) from None


# --- Mailgun


def mailgun_digest(timestamp: str, token: str, key: bytes) -> str:
    """The signature Mailgun sends for `timestamp` and `token`."""
    return hmac.new(key, (timestamp + token).encode(), hashlib.sha256).hexdigest()


def verify_mailgun(
    timestamp: str, token: str, signature: str, key: bytes, *, now: float | None = None
) -> str:
    """Raise `SignatureInvalid` unless `signature` is Mailgun's for `timestamp + token`,
    recently; the receipt to take once (a digest of the token: a replay carries it)."""
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise SignatureInvalid(("body", "signature", "timestamp"), "malformed timestamp")
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > MAILGUN_TOLERANCE_SECONDS:
        raise SignatureInvalid(
            ("body", "signature", "timestamp"), "signature timestamp is too old or in the future"
        )
    expected = mailgun_digest(timestamp, token, key)
    if not hmac.compare_digest(expected.encode(), signature.strip().lower().encode()):
        raise SignatureInvalid(
            ("body", "signature", "signature"),
            "the signature does not verify with MAILGUN_WEBHOOK_SIGNING_KEY",
        )
    return hashlib.sha256(f"mailgun:{token}".encode()).hexdigest()


# --- Postmark


def verify_basic_auth(authorization: str | None, user: str, password: str) -> None:
    """Raise `SignatureInvalid` unless `authorization` is `Basic <user:password>` (both
    compared in constant time, so a guesser learns nothing from the timing)."""
    field = ("header", "authorization")
    if not authorization or not authorization.lower().startswith("basic "):
        raise SignatureInvalid(field, "missing HTTP basic credentials (Postmark: user:password@)")
    try:
        given = base64.b64decode(authorization[6:].strip(), validate=True)
    except (ValueError, binascii.Error):
        raise SignatureInvalid(field, "malformed HTTP basic credentials") from None
    given_user, sep, given_password = given.partition(b":")
    user_ok = hmac.compare_digest(given_user, user.encode())
    password_ok = hmac.compare_digest(given_password, password.encode())
    if not (sep and user_ok and password_ok):
        raise SignatureInvalid(field, "wrong POSTMARK_WEBHOOK_USER or POSTMARK_WEBHOOK_PASSWORD")


# --- Amazon SNS

_NOTIFICATION_FIELDS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
_SUBSCRIPTION_FIELDS = (
    "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type",
)  # fmt: skip
SNS_TYPES = ("Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation")


def sns_string_to_sign(message: dict[str, object]) -> bytes:
    """The canonical string SNS signs: `name\\nvalue\\n` for its fields, in order (Subject
    only when the message has one)."""
    kind = message.get("Type")
    fields = _NOTIFICATION_FIELDS if kind == "Notification" else _SUBSCRIPTION_FIELDS
    return "".join(
        f"{name}\n{message[name]}\n"
        for name in fields
        if name in message and message[name] is not None
    ).encode()


def sns_certificate_url_allowed(url: str) -> bool:
    """AWS's rule: the certificate is served over https by `sns.<region>.amazonaws.com`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    host = (parts.hostname or "").lower()
    return (
        parts.scheme == "https"
        and _SNS_HOST.fullmatch(host) is not None
        and parts.port in (None, 443)
        and not parts.username
        and parts.path.endswith(".pem")
    )


Fetch = Callable[[str], Awaitable[bytes]]


async def fetch_over_https(url: str) -> bytes:
    """GET `url` (no redirects, 10 s, at most 64 KiB): the production certificate fetcher."""
    async with (
        httpx.AsyncClient(timeout=10, follow_redirects=False) as client,
        client.stream("GET", url) as response,
    ):
        response.raise_for_status()
        body = b""
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > MAX_CERTIFICATE_BYTES:
                raise ValueError("certificate too large")
        return body


class SnsVerifier:
    """Verifies SNS messages for the allowed topics. Certificates come from `fetch` (the
    network, in production) once per URL and are cached; `pinned` (PEM bytes, e.g. from
    `SES_SNS_SIGNING_CERTIFICATE`) replaces fetching — the URL must pass AWS's host rule
    either way."""

    def __init__(
        self,
        topics: Collection[str],
        *,
        fetch: Fetch = fetch_over_https,
        pinned: bytes | None = None,
        cache_size: int = 32,
    ) -> None:
        self._topics = frozenset(topics)
        self._fetch = fetch
        self._pinned = _rsa_key(pinned) if pinned is not None else None
        self._cache: OrderedDict[str, rsa.RSAPublicKey] = OrderedDict()
        self._cache_size = cache_size

    async def verify(self, message: dict[str, object]) -> None:
        """Raise `TopicNotAllowed` or `SignatureInvalid` unless `message` (the parsed JSON
        body) is a genuine SNS message from an allowed topic."""
        if message.get("Type") not in SNS_TYPES:
            raise SignatureInvalid(("body", "Type"), f"not an SNS message type: {SNS_TYPES}")
        if message.get("TopicArn") not in self._topics:
            raise TopicNotAllowed(f"topic {str(message.get('TopicArn'))[:200]!r} is not allowed")
        version = message.get("SignatureVersion")
        algorithm: hashes.HashAlgorithm
        if version == "1":
            algorithm = hashes.SHA1()  # what SignatureVersion 1 is (AWS still sends it)
        elif version == "2":
            algorithm = hashes.SHA256()
        else:
            raise SignatureInvalid(("body", "SignatureVersion"), "unsigned or unknown version")
        signature, url = message.get("Signature"), message.get("SigningCertURL")
        if not isinstance(signature, str) or not signature:
            raise SignatureInvalid(("body", "Signature"), "unsigned SNS message")
        if not isinstance(url, str) or not sns_certificate_url_allowed(url):
            raise SignatureInvalid(
                ("body", "SigningCertURL"), "not an https URL on sns.<region>.amazonaws.com"
            )
        key = await self._key(url)
        try:
            key.verify(
                base64.b64decode(signature, validate=True),
                sns_string_to_sign(message),
                padding.PKCS1v15(),
                algorithm,
            )
        except (InvalidSignature, ValueError, binascii.Error):
            raise SignatureInvalid(
                ("body", "Signature"), "the SNS signature does not verify"
            ) from None

    async def _key(self, url: str) -> rsa.RSAPublicKey:
        if self._pinned is not None:
            return self._pinned
        if (cached := self._cache.get(url)) is not None:
            self._cache.move_to_end(url)
            return cached
        try:
            key = _rsa_key(await self._fetch(url))
        except (httpx.HTTPError, ValueError) as exc:
            raise SignatureInvalid(
                ("body", "SigningCertURL"), f"the signing certificate could not be read: {exc}"
            ) from None
        self._cache[url] = key
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return key


def _rsa_key(pem: bytes) -> rsa.RSAPublicKey:
    key = x509.load_pem_x509_certificate(pem).public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("the SNS signing certificate's key is not RSA")
    return key
