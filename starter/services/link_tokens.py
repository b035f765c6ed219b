"""Signed, opaque tokens for tracking, unsubscribe and consent links (itsdangerous).

A token carries ids only (an outbox row, a link's position or *name*, a lead, a topic);
the server looks up what they mean. A click token never carries a URL: the redirect target
comes from the email's stored links (`email_links`, by outbox id and position), or for
tokens made before those existed from our own link table (`journeys.rendering.LINK_PATHS`),
so no token can send anyone elsewhere. Each purpose has its own salt, so a token made for
one purpose is refused by every other.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from itsdangerous import BadData, URLSafeSerializer, URLSafeTimedSerializer

# A confirmation link works for this long (the double opt-in expires with it).
CONFIRMATION_MAX_AGE_SECONDS = 14 * 24 * 3600
# Longest token any endpoint accepts: anything longer is refused before it is parsed.
MAX_TOKEN_LENGTH = 300


# `bounce+<outbox id>-<16 base32 characters>` (case-insensitive: some MTAs lower-case).
_RETURN_PATH = re.compile(r"bounce\+([0-9]{1,18})-([a-z2-7]{16})", re.IGNORECASE)


class TokenInvalid(ValueError):
    """Forged, tampered, truncated, expired or for another purpose."""


@dataclass(frozen=True)
class LinkTokens:
    """Makes and reads the tokens of one secret key."""

    secret: str

    def _serializer(self, purpose: str) -> URLSafeSerializer:
        return URLSafeSerializer(self.secret, salt=f"nurture.{purpose}")

    def _load(self, purpose: str, token: str) -> Any:
        if not token or len(token) > MAX_TOKEN_LENGTH:
            raise TokenInvalid("no such link")
        try:
            return self._serializer(purpose).loads(token)
        except (BadData, UnicodeError, ValueError):
            raise TokenInvalid("no such link") from None

    def click(self, outbox_id: int, link: str) -> str:
        return self._serializer("click").dumps([outbox_id, link])

    def read_click(self, token: str) -> tuple[int, str]:
        value = self._load("click", token)
        if not (
            isinstance(value, list)
            and len(value) == 2
            and isinstance(value[0], int)
            and isinstance(value[1], str)
        ):
            raise TokenInvalid("no such link")
        return value[0], value[1]

    def link(self, outbox_id: int, position: int) -> str:
        """A tracked link of a sent email: its target is `email_links` row (outbox, position)."""
        return self._serializer("link").dumps([outbox_id, position])

    def read_link(self, token: str) -> tuple[int, int]:
        value = self._load("link", token)
        if not (
            isinstance(value, list)
            and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        ):
            raise TokenInvalid("no such link")
        return value[0], value[1]

    def open(self, outbox_id: int) -> str:
        return self._serializer("open").dumps(outbox_id)

    def read_open(self, token: str) -> int:
        value = self._load("open", token)
        if not isinstance(value, int):
            raise TokenInvalid("no such link")
        return value

    def unsubscribe(self, lead_id: str, topic: str | None = None) -> str:
        """An unsubscribe link: from everything (the footer's), or from one topic only (the
        `List-Unsubscribe` header's one-click unsubscribe)."""
        serializer = self._serializer("unsubscribe")
        return serializer.dumps(lead_id if topic is None else [lead_id, topic])

    def read_unsubscribe(self, token: str) -> str:
        """The lead an unsubscribe link is for (either kind)."""
        return self.read_unsubscribe_from(token)[0]

    def read_unsubscribe_from(self, token: str) -> tuple[str, str | None]:
        """The lead and the topic it unsubscribes from (None: everything)."""
        value = self._load("unsubscribe", token)
        if isinstance(value, str):
            return value, None
        if not (
            isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)
        ):
            raise TokenInvalid("no such link")
        return value[0], value[1]

    def preferences(self, lead_id: str) -> str:
        """The lead's preference page (`/p/<token>`): the token is its only credential."""
        return self._serializer("preferences").dumps(lead_id)

    def read_preferences(self, token: str) -> str:
        value = self._load("preferences", token)
        if not isinstance(value, str):
            raise TokenInvalid("no such link")
        return value

    def confirm(self, lead_id: str, *, now: datetime | None = None) -> str:
        """A confirmation link's token: the lead and the moment it was made, to the
        millisecond (the serializer's own timestamp has whole seconds)."""
        moment = now or datetime.now(UTC)
        payload = [lead_id, int(moment.timestamp() * 1000)]
        return URLSafeTimedSerializer(self.secret, salt="nurture.confirm").dumps(payload)

    def read_confirm(
        self, token: str, *, max_age: int = CONFIRMATION_MAX_AGE_SECONDS
    ) -> tuple[str, datetime]:
        """The lead id and when the link was made (a link older than an unsubscribe must
        not re-subscribe)."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            raise TokenInvalid("no such link")
        try:
            value, issued_at = URLSafeTimedSerializer(self.secret, salt="nurture.confirm").loads(
                token, max_age=max_age, return_timestamp=True
            )
        except (BadData, UnicodeError, ValueError, OverflowError):
            raise TokenInvalid("this confirmation link is invalid or has expired") from None
        if isinstance(value, str):  # made before tokens carried milliseconds
            return value, issued_at
        if not (
            isinstance(value, list)
            and len(value) == 2
            and isinstance(value[0], str)
            and isinstance(value[1], int)
            and not isinstance(value[1], bool)
            and 0 <= value[1] < 10**14
        ):
            raise TokenInvalid("no such link")
        return value[0], datetime.fromtimestamp(value[1] / 1000, UTC)

    def return_path(self, outbox_id: int, domain: str) -> str:
        """The envelope sender of outbox row `outbox_id` (VERP): `bounce+<id>-<mac>@domain`,
        short enough for a local part (64 characters) and verifiable without a lookup."""
        return f"bounce+{outbox_id}-{self._return_mac(outbox_id)}@{domain}"

    def read_return_path(self, address: str) -> int:
        """The outbox row a bounce's recipient names; `TokenInvalid` unless it verifies."""
        local = address.strip().strip("<>").partition("@")[0]
        found = _RETURN_PATH.fullmatch(local)
        if found is None:
            raise TokenInvalid("not a return path")
        outbox_id = int(found.group(1))
        if not hmac.compare_digest(found.group(2).lower(), self._return_mac(outbox_id)):
            raise TokenInvalid("return path does not verify")
        return outbox_id

    def _return_mac(self, outbox_id: int) -> str:
        digest = hmac.new(
            self.secret.encode(), f"nurture.return-path:{outbox_id}".encode(), hashlib.sha256
        ).digest()
        return base64.b32encode(digest[:10]).decode().lower()  # 16 characters, 80 bits
