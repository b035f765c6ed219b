"""Webhooks from an email provider (issue 16, point 4), on the real stack: the providers'
documented sample payloads (tests/data/esp/), signed the way each provider signs them with
keys these tests generate, posted to the real API; each event stored as an inbound row
before the 2xx and processed by the same workflow as a bounce that came by SMTP. A
permanent bounce suppresses with the provider's evidence, a complaint unsubscribes, a
delivery changes nothing; unsigned, forged and stale requests store nothing; an event
without a reference to one of our messages changes nothing. Pure unit tests for the
parsers and the verifiers first."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.testing import ActivityEnvironment
from temporalio.worker import Worker

from activities.email import EmailActivities
from db.models import ConsentRecord, InboundMessage, Lead, OutboxEmail
from journeys.esp_feedback import (
    PayloadInvalid,
    mailgun_event,
    postmark_event,
    sendgrid_batch,
    sendgrid_event,
    ses_event,
)
from journeys.inbound_mail import InboundKind
from starter.dev.smtp_sink import SmtpSink
from starter.services.esp_signatures import (
    SignatureInvalid,
    SnsVerifier,
    TopicNotAllowed,
    sendgrid_public_key,
    sns_certificate_url_allowed,
    verify_basic_auth,
    verify_mailgun,
    verify_sendgrid,
)
from starter.services.esp_webhooks import WebhookNotConfigured, receive_sendgrid
from starter.services.link_tokens import LinkTokens
from starter.settings import Settings
from tests.conftest import new_email
from tests.lifecycle_helpers import eventually
from tests.test_email_activity import make_lead, request

SAMPLES = Path(__file__).with_name("data") / "esp"
TOPIC = "arn:aws:sns:eu-west-1:123456789012:nurture-ses-feedback"
CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0000.pem"


# --- keys the tests sign with, as each provider would


@dataclass(frozen=True)
class ProviderKeys:
    sns: rsa.RSAPrivateKey
    sns_certificate: bytes  # PEM, self-signed
    sendgrid: ec.EllipticCurvePrivateKey
    mailgun: str
    postmark_user: str = "postmark"
    postmark_password: str = field(default_factory=lambda: secrets.token_urlsafe(24))


def _certificate(key: rsa.RSAPrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


def _new_keys() -> ProviderKeys:
    sns = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ProviderKeys(
        sns=sns,
        sns_certificate=_certificate(sns),
        sendgrid=ec.generate_private_key(ec.SECP256R1()),
        mailgun=secrets.token_hex(16),
    )


@pytest.fixture(scope="module")
def keys() -> ProviderKeys:
    return _new_keys()


def _sendgrid_public(key: ec.EllipticCurvePrivateKey) -> str:
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


@pytest.fixture
def settings(settings: Settings, keys: ProviderKeys, tmp_path: Path) -> Settings:
    """The suite's settings with every provider's webhook configured."""
    certificate = tmp_path / "sns.pem"
    certificate.write_bytes(keys.sns_certificate)
    return settings.model_copy(
        update={
            "ses_sns_topic_arns": [TOPIC],
            "ses_sns_signing_certificate": certificate,
            "sendgrid_webhook_public_key": _sendgrid_public(keys.sendgrid),
            "mailgun_webhook_signing_key": SecretStr(keys.mailgun),
            "postmark_webhook_user": keys.postmark_user,
            "postmark_webhook_password": SecretStr(keys.postmark_password),
        }
    )


# --- requests as each provider sends them


@dataclass(frozen=True)
class Posted:
    """A webhook request: where, what, with which headers; the inbound row it makes."""

    path: str
    body: bytes
    headers: dict[str, str]
    key: str


def _sample(name: str, email: str) -> Any:
    """A documented sample, about `email` (its documented addresses replaced)."""
    text = (SAMPLES / name).read_text()
    for documented in (
        "jane@example.com", "richard@example.com", "example@test.com", "john@example.com",
        "alice@example.com",
    ):  # fmt: skip
        text = text.replace(documented, email)
    return json.loads(text)


def sns_string_to_sign(message: dict[str, str]) -> bytes:
    """AWS's canonical form of a Notification, written out here independently of the code
    under test: `name\\nvalue\\n` for Message, MessageId, Subject (if any), Timestamp,
    TopicArn, Type."""
    names = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
    return "".join(f"{n}\n{message[n]}\n" for n in names if n in message).encode()


def ses_post(
    keys: ProviderKeys,
    sample: str,
    email: str,
    reference: str | None,
    *,
    topic: str = TOPIC,
    cert_url: str = CERT_URL,
    signer: rsa.RSAPrivateKey | None = None,
    version: str = "2",
) -> Posted:
    notification = _sample(sample, email)
    if reference is not None:
        notification["mail"]["headers"].append({"name": "X-Nurture-Outbox", "value": reference})
    envelope = {
        "Type": "Notification",
        "MessageId": str(uuid.uuid4()),
        "TopicArn": topic,
        "Message": json.dumps(notification),
        "Timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "SignatureVersion": version,
        "SigningCertURL": cert_url,
        "UnsubscribeURL": f"https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe&x={topic}",
    }
    algorithm = hashes.SHA256() if version == "2" else hashes.SHA1()
    signature = (signer or keys.sns).sign(
        sns_string_to_sign(envelope), padding.PKCS1v15(), algorithm
    )
    envelope["Signature"] = base64.b64encode(signature).decode()
    body = json.dumps(envelope).encode()
    return Posted("/v1/webhooks/ses", body, {}, f"ses:{envelope['MessageId']}")


def sendgrid_post(
    keys: ProviderKeys,
    event: str,
    email: str,
    reference: str | None,
    *,
    signer: ec.EllipticCurvePrivateKey | None = None,
    event_id: str | None = None,
) -> Posted:
    """One event of the documented batch (by its `event`, or `blocked` for the blocked
    bounce), signed over `timestamp + body`."""
    batch = _sample("sendgrid_events.json", email)
    chosen = [e for e in batch if e["event"] == event or e.get("type") == event]
    item = chosen[0] if event != "bounce" else next(e for e in chosen if e["type"] == "bounce")
    item["sg_event_id"] = event_id or base64.b64encode(uuid.uuid4().bytes).decode()
    if reference is not None:
        item["nurture_outbox"] = reference
    body = json.dumps([item]).encode() + b"\r\n"
    timestamp = str(int(time.time()))
    signature = (signer or keys.sendgrid).sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    headers = {
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
    }
    return Posted("/v1/webhooks/sendgrid", body, headers, f"sendgrid:{item['sg_event_id']}")


def postmark_post(
    keys: ProviderKeys,
    sample: str,
    email: str,
    reference: str | None,
    *,
    password: str | None = None,
) -> Posted:
    event = _sample(sample, email)
    if "ID" in event:
        event["ID"] = secrets.randbelow(10**15)
    event["MessageID"] = str(uuid.uuid4())
    if reference is not None:
        event["Metadata"]["nurture_outbox"] = reference
    credentials = f"{keys.postmark_user}:{password or keys.postmark_password}".encode()
    headers = {"Authorization": "Basic " + base64.b64encode(credentials).decode()}
    kind = {"Bounce": "bounce", "SpamComplaint": "complaint"}.get(event["RecordType"])
    key = (
        f"postmark:{kind}:{event['ID']}"
        if kind
        else f"postmark:delivery:{event['MessageID']}:{email}"
    )
    return Posted("/v1/webhooks/postmark", json.dumps(event).encode(), headers, key)


def mailgun_post(
    keys: ProviderKeys,
    sample: str,
    email: str,
    reference: str | None,
    *,
    signing_key: str | None = None,
    timestamp: int | None = None,
    token: str | None = None,
) -> Posted:
    payload = _sample(sample, email)
    data = payload["event-data"]
    data["id"] = uuid.uuid4().hex[:22]
    if reference is not None:
        data["user-variables"] = {"nurture_outbox": reference}
    stamp, token = str(timestamp or int(time.time())), token or secrets.token_hex(25)
    digest = hmac.new(
        (signing_key or keys.mailgun).encode(), (stamp + token).encode(), hashlib.sha256
    ).hexdigest()
    payload["signature"] = {"timestamp": stamp, "token": token, "signature": digest}
    return Posted("/v1/webhooks/mailgun", json.dumps(payload).encode(), {}, f"mailgun:{data['id']}")


# Each provider's documented permanent bounce, complaint and delivery.
Build = Callable[[ProviderKeys, str, str | None], Posted]
BOUNCES: dict[str, Build] = {
    "ses": lambda k, e, r: ses_post(k, "ses_bounce_permanent.json", e, r),
    "sendgrid": lambda k, e, r: sendgrid_post(k, "bounce", e, r),
    "postmark": lambda k, e, r: postmark_post(k, "postmark_bounce.json", e, r),
    "mailgun": lambda k, e, r: mailgun_post(k, "mailgun_failed_permanent.json", e, r),
}
COMPLAINTS: dict[str, Build] = {
    "ses": lambda k, e, r: ses_post(k, "ses_complaint.json", e, r),
    "sendgrid": lambda k, e, r: sendgrid_post(k, "spamreport", e, r),
    "postmark": lambda k, e, r: postmark_post(k, "postmark_spam_complaint.json", e, r),
    "mailgun": lambda k, e, r: mailgun_post(k, "mailgun_complained.json", e, r),
}
DELIVERIES: dict[str, Build] = {
    "ses": lambda k, e, r: ses_post(k, "ses_delivery.json", e, r),
    "sendgrid": lambda k, e, r: sendgrid_post(k, "delivered", e, r),
    "postmark": lambda k, e, r: postmark_post(k, "postmark_delivery.json", e, r),
    "mailgun": lambda k, e, r: mailgun_post(k, "mailgun_delivered.json", e, r),
}
# The provider's status code and words, as they must appear in the evidence.
BOUNCE_EVIDENCE = {
    "ses": ("5.1.1", "User"),
    "sendgrid": ("5.0.0", "unknown recipient"),
    "postmark": ("5.1.1", "does not exist"),
    "mailgun": ("5.1.1", "does not exist"),
}


# --- pure: the documented samples read as what they are


def test_the_documented_samples_read_as_what_they_are() -> None:
    def kind(raw: bytes, read: Callable[[bytes], Any]) -> InboundKind:
        found: InboundKind = read(raw).classification.kind
        return found

    envelope = {
        "Type": "Notification", "MessageId": "m", "TopicArn": TOPIC, "Timestamp": "t",
    }  # fmt: skip

    def sns(name: str) -> bytes:
        return json.dumps(envelope | {"Message": (SAMPLES / name).read_text()}).encode()

    assert [kind(sns(n), ses_event) for n in ("ses_bounce_permanent.json", "ses_complaint.json",
            "ses_delivery.json")] == [InboundKind.BOUNCE, InboundKind.COMPLAINT,
                                     InboundKind.DELIVERED]  # fmt: skip
    batch = sendgrid_batch((SAMPLES / "sendgrid_events.json").read_bytes())
    assert [kind(raw, sendgrid_event) for raw in batch] == [
        InboundKind.OTHER, InboundKind.DELIVERED, InboundKind.BOUNCE, InboundKind.BOUNCE,
        InboundKind.COMPLAINT, InboundKind.OTHER,
    ]  # fmt: skip
    assert [
        kind((SAMPLES / n).read_bytes(), postmark_event)
        for n in ("postmark_bounce.json", "postmark_spam_complaint.json", "postmark_delivery.json")
    ] == [InboundKind.BOUNCE, InboundKind.COMPLAINT, InboundKind.DELIVERED]
    assert [
        kind((SAMPLES / n).read_bytes(), mailgun_event)
        for n in ("mailgun_failed_permanent.json", "mailgun_complained.json",
                  "mailgun_delivered.json")
    ] == [InboundKind.BOUNCE, InboundKind.COMPLAINT, InboundKind.DELIVERED]  # fmt: skip


def test_a_hard_bounce_is_permanent_with_the_providers_status_and_a_block_is_transient() -> None:
    bounce, blocked = sendgrid_batch((SAMPLES / "sendgrid_events.json").read_bytes())[2:4]

    hard = sendgrid_event(bounce).classification
    soft = sendgrid_event(blocked).classification
    mailgun = mailgun_event((SAMPLES / "mailgun_failed_permanent.json").read_bytes())

    assert hard.permanent_failure and hard.statuses[0].status == "5.0.0"
    assert "500 unknown recipient" in hard.statuses[0].diagnostic
    assert not soft.permanent_failure and soft.statuses[0].status == "4.0.0"
    assert "5.7.1" in soft.statuses[0].diagnostic  # the words kept, the verdict the provider's
    assert mailgun.classification.statuses[0].status == "5.1.1"
    assert mailgun.message_key == "mailgun:G9Bn5sl1TC6nu79C8C0bwg"


def test_an_unknown_event_type_is_recorded_not_refused() -> None:
    raw = json.dumps({"email": "a@example.com", "event": "group_resubscribe",
                      "sg_event_id": "x1"}).encode()  # fmt: skip

    assert sendgrid_event(raw).classification.kind == InboundKind.OTHER


def test_a_malformed_event_names_the_field() -> None:
    batch = json.loads((SAMPLES / "sendgrid_events.json").read_text())
    del batch[1]["sg_event_id"]

    with pytest.raises(PayloadInvalid) as refused:
        sendgrid_batch(json.dumps(batch).encode())

    assert refused.value.loc == ("body", 1, "sg_event_id")


# --- pure: the verifiers


def test_sendgrids_own_signed_request_verifies_and_a_changed_body_does_not() -> None:
    vector = json.loads((SAMPLES / "sendgrid_signed_vector.json").read_text())
    key = sendgrid_public_key(vector["public_key"])
    body = vector["body"].encode()

    verify_sendgrid(body, vector["signature"], vector["timestamp"], key)
    with pytest.raises(SignatureInvalid):
        verify_sendgrid(body.replace(b"dropped", b"delivered"), vector["signature"],
                        vector["timestamp"], key)  # fmt: skip


@pytest.mark.parametrize(
    "url",
    [
        "http://sns.eu-west-1.amazonaws.com/cert.pem",
        "https://sns.eu-west-1.amazonaws.com.evil.example/cert.pem",
        "https://evil.example/sns.eu-west-1.amazonaws.com/cert.pem",
        "https://sns.eu-west-1.amazonaws.com@evil.example/cert.pem",
        "https://s3.amazonaws.com/cert.pem",
        "https://sns.eu-west-1.amazonaws.com:8443/cert.pem",
    ],
)
def test_an_sns_certificate_is_taken_only_over_https_from_an_sns_host(url: str) -> None:
    assert sns_certificate_url_allowed(CERT_URL)
    assert not sns_certificate_url_allowed(url)


@pytest.mark.parametrize("version", ["1", "2"])
async def test_an_sns_signature_verifies_with_the_fetched_certificate_fetched_once(
    keys: ProviderKeys, version: str
) -> None:
    fetched: list[str] = []

    async def fetch(url: str) -> bytes:
        fetched.append(url)
        return keys.sns_certificate

    verifier = SnsVerifier([TOPIC], fetch=fetch)
    for _ in range(2):
        posted = ses_post(keys, "ses_delivery.json", "a@example.com", None, version=version)
        await verifier.verify(json.loads(posted.body))

    assert fetched == [CERT_URL]


async def test_a_changed_sns_message_or_another_topic_is_refused(keys: ProviderKeys) -> None:
    async def fetch(url: str) -> bytes:
        return keys.sns_certificate

    verifier = SnsVerifier([TOPIC], fetch=fetch)
    message = json.loads(ses_post(keys, "ses_delivery.json", "a@example.com", None).body)

    with pytest.raises(SignatureInvalid):
        await verifier.verify(
            message | {"Message": message["Message"].replace("Delivery", "Bounce")}
        )
    other = json.loads(ses_post(keys, "ses_delivery.json", "a@x.example", None, topic="arn:x").body)
    with pytest.raises(TopicNotAllowed):
        await verifier.verify(other)


def test_a_stale_or_forged_mailgun_signature_is_refused() -> None:
    now = time.time()
    key = b"key-of-the-test"
    good = hmac.new(key, f"{int(now)}token".encode(), hashlib.sha256).hexdigest()

    assert verify_mailgun(str(int(now)), "token", good, key, now=now)
    with pytest.raises(SignatureInvalid, match="too old"):
        verify_mailgun(str(int(now)), "token", good, key, now=now + 301)
    with pytest.raises(SignatureInvalid, match="does not verify"):
        verify_mailgun(str(int(now)), "token", good, b"another key", now=now)


def test_postmark_basic_credentials_must_match_both_parts() -> None:
    def basic(credentials: str) -> str:
        return "Basic " + base64.b64encode(credentials.encode()).decode()

    verify_basic_auth(basic("user:a-long-password"), "user", "a-long-password")
    for wrong in (None, "Bearer x", basic("user:wrong"), basic("other:a-long-password"),
                  basic("user")):  # fmt: skip
        with pytest.raises(SignatureInvalid):
            verify_basic_auth(wrong, "user", "a-long-password")


async def test_an_unconfigured_provider_is_not_found_naming_the_setting(
    settings: Settings,
) -> None:
    plain = settings.model_copy(update={"sendgrid_webhook_public_key": None})

    with pytest.raises(WebhookNotConfigured, match="SENDGRID_WEBHOOK_PUBLIC_KEY"):
        await receive_sendgrid(plain, None, b"[]", {})  # type: ignore[arg-type]  # not reached


# --- through the API, the database and Temporal


async def _sent(settings: Settings, sessions: async_sessionmaker, email: str) -> str:
    """Send one journey email to a new lead; the reference its message carries."""
    lead_id = await make_lead(sessions, email)
    key = f"test/{uuid.uuid4()}"
    await ActivityEnvironment().run(
        EmailActivities(settings, sessions).send_email, request(lead_id, key)
    )
    async with sessions() as session:
        outbox_id = (
            await session.execute(select(OutboxEmail.id).where(OutboxEmail.idempotency_key == key))
        ).scalar_one()
    tokens = LinkTokens(settings.require_secret_key())
    return tokens.return_path(outbox_id, "x").partition("@")[0]


async def _rows(sessions: async_sessionmaker, key: str) -> list[InboundMessage]:
    async with sessions() as session:
        found = await session.execute(
            select(InboundMessage).where(InboundMessage.message_key == key)
        )
        return list(found.scalars())


async def _processed(sessions: async_sessionmaker, key: str) -> InboundMessage:
    [row] = await eventually(
        lambda: _rows(sessions, key), lambda rows: bool(rows) and rows[0].status == "processed"
    )
    return row


async def _lead(sessions: async_sessionmaker, email: str) -> Lead:
    async with sessions() as session:
        found: Lead = (await session.execute(select(Lead).where(Lead.email == email))).scalar_one()
        return found


async def _post(api: httpx.AsyncClient, posted: Posted) -> httpx.Response:
    headers = {"Content-Type": "application/json", "Authorization": "", **posted.headers}
    return await api.post(posted.path, content=posted.body, headers=headers)


async def test_a_sent_message_carries_the_reference_each_configured_provider_echoes(
    settings: Settings, sessions: async_sessionmaker, smtp: SmtpSink
) -> None:
    email = new_email("echo")

    reference = await _sent(settings, sessions, email)

    [mail] = smtp.to(email)
    assert mail["X-Nurture-Outbox"] == reference
    assert json.loads(str(mail["X-SMTPAPI"])) == {"unique_args": {"nurture_outbox": reference}}
    assert json.loads(str(mail["X-Mailgun-Variables"])) == {"nurture_outbox": reference}
    assert mail["X-PM-Metadata-nurture_outbox"] == reference


@pytest.mark.parametrize("provider", sorted(BOUNCES))
async def test_a_permanent_bounce_suppresses_the_lead_with_the_providers_evidence(
    settings: Settings,
    sessions: async_sessionmaker,
    worker: Worker,
    api: httpx.AsyncClient,
    keys: ProviderKeys,
    provider: str,
) -> None:
    email = new_email(f"{provider}-bounce")
    posted = BOUNCES[provider](keys, email, await _sent(settings, sessions, email))

    answer = await _post(api, posted)

    assert answer.status_code == 200, answer.text
    row = await _processed(sessions, posted.key)
    assert (row.source, row.kind) == (provider, "bounce")
    lead = await _lead(sessions, email)
    assert lead.consent_status == "bounced"
    async with sessions() as session:
        evidence = (
            await session.execute(
                select(ConsentRecord.source).where(
                    ConsentRecord.lead_id == lead.id, ConsentRecord.action == "bounced"
                )
            )
        ).scalar_one()
    code, words = BOUNCE_EVIDENCE[provider]
    assert code in evidence and words in evidence, evidence


@pytest.mark.parametrize("provider", sorted(COMPLAINTS))
async def test_a_complaint_unsubscribes_and_suppresses(
    settings: Settings,
    sessions: async_sessionmaker,
    worker: Worker,
    api: httpx.AsyncClient,
    keys: ProviderKeys,
    provider: str,
) -> None:
    email = new_email(f"{provider}-complaint")
    posted = COMPLAINTS[provider](keys, email, await _sent(settings, sessions, email))

    assert (await _post(api, posted)).status_code == 200

    row = await _processed(sessions, posted.key)
    assert row.kind == "complaint"
    assert (await _lead(sessions, email)).consent_status == "complained"


@pytest.mark.parametrize("provider", sorted(DELIVERIES))
async def test_a_delivery_is_recorded_and_changes_nothing(
    settings: Settings,
    sessions: async_sessionmaker,
    worker: Worker,
    api: httpx.AsyncClient,
    keys: ProviderKeys,
    provider: str,
) -> None:
    email = new_email(f"{provider}-delivered")
    posted = DELIVERIES[provider](keys, email, await _sent(settings, sessions, email))

    assert (await _post(api, posted)).status_code == 200

    row = await _processed(sessions, posted.key)
    assert row.kind == "delivered" and row.outbox_id is not None
    assert (await _lead(sessions, email)).consent_status == "confirmed"


async def test_a_providers_retry_of_the_same_event_is_one_row(
    settings: Settings,
    sessions: async_sessionmaker,
    worker: Worker,
    api: httpx.AsyncClient,
    keys: ProviderKeys,
) -> None:
    email = new_email("retry")
    reference = await _sent(settings, sessions, email)
    event_id = base64.b64encode(uuid.uuid4().bytes).decode()
    first = sendgrid_post(keys, "bounce", email, reference, event_id=event_id)
    retry = sendgrid_post(keys, "bounce", email, reference, event_id=event_id)  # signed anew

    answers = [await _post(api, first), await _post(api, retry)]

    assert [a.status_code for a in answers] == [200, 200]
    await _processed(sessions, first.key)
    assert len(await _rows(sessions, first.key)) == 1


def _refusals() -> dict[str, tuple[Callable[[ProviderKeys, str], Posted], int]]:
    """Requests that must be refused (with their status): unsigned, forged, stale."""
    other = _new_keys()

    def unsigned_sendgrid(k: ProviderKeys, e: str) -> Posted:
        posted = sendgrid_post(k, "bounce", e, None)
        return Posted(posted.path, posted.body, {}, posted.key)

    def tampered_sendgrid(k: ProviderKeys, e: str) -> Posted:
        posted = sendgrid_post(k, "delivered", e, None)
        body = posted.body.replace(b'"delivered"', b'"bounce"')
        return Posted(posted.path, body, posted.headers, posted.key)

    def unsigned_ses(k: ProviderKeys, e: str) -> Posted:
        posted = ses_post(k, "ses_bounce_permanent.json", e, None)
        envelope = json.loads(posted.body)
        del envelope["Signature"]
        return Posted(posted.path, json.dumps(envelope).encode(), {}, posted.key)

    def unsigned_mailgun(k: ProviderKeys, e: str) -> Posted:
        posted = mailgun_post(k, "mailgun_failed_permanent.json", e, None)
        payload = json.loads(posted.body)
        del payload["signature"]
        return Posted(posted.path, json.dumps(payload).encode(), {}, posted.key)

    def unauthenticated_postmark(k: ProviderKeys, e: str) -> Posted:
        posted = postmark_post(k, "postmark_bounce.json", e, None)
        return Posted(posted.path, posted.body, {}, posted.key)

    return {
        "sendgrid unsigned": (unsigned_sendgrid, 401),
        "sendgrid signed by another key": (
            lambda k, e: sendgrid_post(k, "bounce", e, None, signer=other.sendgrid),
            401,
        ),
        "sendgrid body changed after signing": (tampered_sendgrid, 401),
        "ses unsigned": (unsigned_ses, 401),
        "ses signed by another key": (
            lambda k, e: ses_post(k, "ses_bounce_permanent.json", e, None, signer=other.sns),
            401,
        ),
        "ses certificate from another host": (
            lambda k, e: ses_post(
                k, "ses_bounce_permanent.json", e, None, cert_url="https://evil.example/cert.pem"
            ),
            401,
        ),
        "ses from another topic": (
            lambda k, e: ses_post(
                k,
                "ses_bounce_permanent.json",
                e,
                None,
                topic="arn:aws:sns:eu-west-1:999999999999:theirs",
            ),
            403,
        ),
        "mailgun unsigned": (unsigned_mailgun, 401),
        "mailgun signed by another key": (
            lambda k, e: mailgun_post(
                k, "mailgun_failed_permanent.json", e, None, signing_key="not-the-key"
            ),
            401,
        ),
        "mailgun stale": (
            lambda k, e: mailgun_post(
                k, "mailgun_failed_permanent.json", e, None, timestamp=int(time.time()) - 3600
            ),
            401,
        ),
        "postmark without credentials": (unauthenticated_postmark, 401),
        "postmark with a wrong password": (
            lambda k, e: postmark_post(
                k, "postmark_bounce.json", e, None, password="wrong-password-123"
            ),
            401,
        ),
    }


REFUSALS = _refusals()


@pytest.mark.parametrize("case", sorted(REFUSALS))
async def test_an_unsigned_forged_or_stale_request_is_refused_and_stores_nothing(
    sessions: async_sessionmaker, api: httpx.AsyncClient, keys: ProviderKeys, case: str
) -> None:
    build, status = REFUSALS[case]
    posted = build(keys, new_email("refused"))

    answer = await _post(api, posted)

    assert answer.status_code == status, answer.text
    assert answer.json()["detail"][0]["msg"]  # names what failed
    assert await _rows(sessions, posted.key) == []


async def test_a_replayed_mailgun_token_is_refused(
    sessions: async_sessionmaker, worker: Worker, api: httpx.AsyncClient, keys: ProviderKeys
) -> None:
    token = secrets.token_hex(25)
    first = mailgun_post(keys, "mailgun_delivered.json", new_email("mg"), None, token=token)
    # The captured signature (timestamp + token) on another body: Mailgun's doesn't cover it.
    stamp = int(json.loads(first.body)["signature"]["timestamp"])
    replay = mailgun_post(
        keys, "mailgun_failed_permanent.json", new_email("mg"), None, token=token, timestamp=stamp
    )

    assert (await _post(api, first)).status_code == 200
    answer = await _post(api, replay)

    assert answer.status_code == 409, answer.text
    assert await _rows(sessions, replay.key) == []


async def test_a_malformed_event_is_refused_naming_the_field_and_stores_nothing(
    sessions: async_sessionmaker, api: httpx.AsyncClient, keys: ProviderKeys
) -> None:
    posted = postmark_post(keys, "postmark_bounce.json", new_email("malformed"), None)
    event = json.loads(posted.body)
    del event["RecordType"]

    answer = await _post(api, Posted(posted.path, json.dumps(event).encode(), posted.headers, ""))

    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["body", "RecordType"]
    assert await _rows(sessions, posted.key) == []


async def test_an_event_naming_no_message_of_ours_changes_nothing(
    settings: Settings,
    sessions: async_sessionmaker,
    worker: Worker,
    api: httpx.AsyncClient,
    keys: ProviderKeys,
) -> None:
    email = new_email("forged-ref")
    genuine = await _sent(settings, sessions, email)
    outbox_id = int(genuine.split("+")[1].split("-")[0])
    forged = LinkTokens("f" * 40).return_path(outbox_id, "x").partition("@")[0]
    posted = BOUNCES["ses"](keys, email, forged)

    assert (await _post(api, posted)).status_code == 200

    row = await _processed(sessions, posted.key)
    assert row.outbox_id is None and row.details["action"].startswith("names no message")
    assert (await _lead(sessions, email)).consent_status == "confirmed"


async def test_a_genuine_reference_with_another_address_changes_nothing(
    settings: Settings,
    sessions: async_sessionmaker,
    worker: Worker,
    api: httpx.AsyncClient,
    keys: ProviderKeys,
) -> None:
    email = new_email("their-ref")
    reference = await _sent(settings, sessions, email)
    posted = BOUNCES["sendgrid"](keys, new_email("someone-else"), reference)

    assert (await _post(api, posted)).status_code == 200

    row = await _processed(sessions, posted.key)
    assert row.outbox_id is None
    assert (await _lead(sessions, email)).consent_status == "confirmed"


async def test_an_sns_subscription_confirmation_is_logged_not_stored(
    sessions: async_sessionmaker, api: httpx.AsyncClient, keys: ProviderKeys
) -> None:
    message = {
        "Type": "SubscriptionConfirmation", "MessageId": str(uuid.uuid4()), "Token": "2336412f37",
        "TopicArn": TOPIC, "Message": "You have chosen to subscribe to the topic …",
        "SubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&Token=2336412f37",
        "Timestamp": "2012-04-26T20:45:04.751Z", "SignatureVersion": "2",
        "SigningCertURL": CERT_URL,
    }  # fmt: skip
    names = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
    signed = "".join(f"{n}\n{message[n]}\n" for n in names).encode()
    signature = keys.sns.sign(signed, padding.PKCS1v15(), hashes.SHA256())
    message["Signature"] = base64.b64encode(signature).decode()

    answer = await _post(api, Posted("/v1/webhooks/ses", json.dumps(message).encode(), {}, ""))

    assert answer.status_code == 200, answer.text
    assert answer.json()["received"] == 0 and "SubscribeURL" in answer.json()["note"]
    assert await _rows(sessions, f"ses:{message['MessageId']}") == []
