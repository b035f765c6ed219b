"""DKIM signatures on outgoing mail (`dkimpy`), when DKIM_DOMAIN, DKIM_SELECTOR and
DKIM_PRIVATE_KEY_FILE are set: receivers (Gmail, Yahoo: required for bulk senders since
February 2024) check it against the public key published at
`<selector>._domainkey.<domain>` (`nurture dns-records` prints the record)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import dkim
import dkim.crypto

# What a signature covers: the headers a receiver shows or acts on, and the body.
SIGNED_HEADERS = (
    b"from", b"to", b"subject", b"date", b"message-id", b"mime-version", b"content-type",
    b"list-unsubscribe", b"list-unsubscribe-post", b"reply-to",
)  # fmt: skip


@dataclass(frozen=True)
class DkimSigner:
    """Signs messages for `domain` with the key of `selector`."""

    domain: str
    selector: str
    private_key: bytes

    def sign(self, message: bytes) -> bytes:
        """`message` (as sent: CRLF line ends) with a `DKIM-Signature` header in front."""
        signature = dkim.sign(
            message,
            self.selector.encode(),
            self.domain.encode(),
            self.private_key,
            include_headers=[h for h in SIGNED_HEADERS],
            canonicalize=(b"relaxed", b"relaxed"),
        )
        return bytes(signature) + message


@cache
def signer_for(
    domain: str | None, selector: str | None, key_file: Path | None
) -> DkimSigner | None:
    """The signer the settings describe (read once per process), or None."""
    if not (domain and selector and key_file):
        return None
    return DkimSigner(domain, selector, key_file.read_bytes())


def _der(tag: int, content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + content


def _der_int(value: int) -> bytes:
    raw = value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")
    return _der(0x02, b"\x00" + raw if raw[0] & 0x80 else raw)


# rsaEncryption (1.2.840.113549.1.1.1) with NULL parameters.
_RSA_ALGORITHM = _der(0x30, _der(0x06, bytes.fromhex("2a864886f70d010101")) + b"\x05\x00")


def public_key_record(private_key_pem: bytes) -> str:
    """The TXT record to publish at `<selector>._domainkey.<domain>`: the public half of
    the signing key (SubjectPublicKeyInfo, as RFC 6376 asks)."""
    key = dkim.crypto.parse_pem_private_key(private_key_pem)
    public = _der(0x30, _der_int(key["modulus"]) + _der_int(key["publicExponent"]))
    spki = _der(0x30, _RSA_ALGORITHM + _der(0x03, b"\x00" + public))
    return f"v=DKIM1; k=rsa; p={base64.b64encode(spki).decode()}"
