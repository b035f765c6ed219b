"""API keys: `Authorization: Bearer <key>`; each key has one role, a sales key its rep.
The role dependencies routes declare are in `starter.api.deps`."""

from __future__ import annotations

import hmac

from starter.settings import ApiKeyHolder


def holder_of(keys: dict[str, ApiKeyHolder], presented: str) -> ApiKeyHolder | None:
    """Who holds the presented key, or None."""
    # Compare against every key in constant time, so timing doesn't reveal a prefix.
    found = None
    for key, holder in keys.items():
        if hmac.compare_digest(key.encode(), presented.encode()):
            found = holder
    return found


def caller_name(holder: ApiKeyHolder) -> str:
    """How a key's holder is recorded (`sales:alex`, `marketing`)."""
    return f"{holder.role.value}:{holder.rep}" if holder.rep else holder.role.value
