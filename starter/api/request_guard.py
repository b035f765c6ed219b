"""What every request meets before the app reads a byte of its body.

1. A keyed route (`/v1/…`, but the signed CRM webhook) needs a known API key: without one
   the answer is 401 at once, so an anonymous client can't make the server read and parse
   a 200 MB body first. The role is still checked by the route's dependency (403).
2. A client address that presented too many unknown keys (or inbox sign-ins) in the last
   minute gets 429 with `Retry-After`, whatever key it sends now: checking the key first
   would tell a guesser right from wrong at full speed. The key itself is never locked, so
   its holder elsewhere is not shut out.
3. A body longer than its route allows is refused with 413: at once by `Content-Length`,
   or as soon as a chunked body passes the limit, without reading the rest.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any
from urllib.parse import urlsplit

from starter.api.auth import holder_of
from starter.api.rate_limits import AttemptLimiter
from starter.settings import ApiKeyHolder

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MIB = 1024 * 1024
DEFAULT_BODY_LIMIT = 1 * MIB
# Routes that take more: bulk uploads (10,000 rows).
BODY_LIMITS = {"/v1/enrollment-jobs/csv": 32 * MIB, "/v1/enrollment-jobs": 32 * MIB}
UNKEYED_V1 = (  # signed instead: the CRM's HMAC, email providers' own schemes
    "/v1/crm/webhook",
    *(f"/v1/webhooks/{provider}" for provider in ("ses", "sendgrid", "postmark", "mailgun")),
)
# Unknown keys (or inbox sign-ins) per client address and minute before it gets 429.
FAILED_AUTH_LIMIT = 20
FAILED_AUTH_WINDOW = 60.0


def body_limit(path: str) -> int:
    """The most bytes a request to `path` may carry."""
    return BODY_LIMITS.get(path, DEFAULT_BODY_LIMIT)


def same_site(headers: Mapping[str, str], request_origin: str, public_base_url: str) -> bool:
    """Whether a form post comes from one of our own pages. Browsers say so in
    `Sec-Fetch-Site` (a page can't forge it); older ones only in `Origin`, which must then
    be ours. A request with neither is no browser's cross-site post."""
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site in ("same-origin", "none")
    origin = headers.get("origin")
    if origin is None:
        return True
    return _origin_of(origin) in (_origin_of(request_origin), _origin_of(public_base_url))


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class BodyTooLarge(Exception):
    """Raised inside the app's body read once a streamed body passes its limit."""


class RequestGuard:
    """The ASGI middleware doing the three checks above."""

    def __init__(
        self, app: ASGIApp, *, api_keys: dict[str, ApiKeyHolder], failures: AttemptLimiter
    ) -> None:
        self.app = app
        self.api_keys = api_keys
        self.failures = failures

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:  # the first of a repeated header, as routes read
            headers.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
        if path.startswith("/v1/") and path not in UNKEYED_V1:
            refused = self._unauthorised(scope, headers)
            if refused is not None:
                await refused(send)
                return
        limit = body_limit(path)
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            await _too_large(limit)(send)
            return
        await self._limited(scope, receive, send, limit)

    def _unauthorised(self, scope: Scope, headers: dict[str, str]) -> _Answer | None:
        address = client_address(scope)
        wait = self.failures.retry_after(address)
        if wait is not None:
            return _problem(
                429,
                "too many unknown API keys from this address; retry later",
                "too_many_attempts",
                {"Retry-After": str(wait)},
            )
        scheme, _, key = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return _problem(
                401,
                "missing API key: send Authorization: Bearer <key>",
                "missing_api_key",
                {"WWW-Authenticate": "Bearer"},
            )
        if holder_of(self.api_keys, key.strip()) is None:
            self.failures.record(address)
            return _problem(
                401, "unknown API key", "unknown_api_key", {"WWW-Authenticate": "Bearer"}
            )
        return None

    async def _limited(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        received = 0
        exceeded = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise BodyTooLarge()
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded and not started:
                return  # the app's own answer to the aborted read; ours follows
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except BodyTooLarge:
            pass
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await _too_large(limit)(send)


_Answer = Callable[[Send], Awaitable[None]]


def _problem(status: int, message: str, kind: str, extra: dict[str, str] | None = None) -> _Answer:
    """An answer in the shape the API gives for the same status elsewhere: `{"detail":
    "<message>"}` for 401 and 429 (as FastAPI's security dependencies answer), the problem
    list `{"detail": [{"loc", "msg", "type"}]}` for 413."""
    detail: object = message
    if status == 413:
        detail = [{"loc": ["body"], "msg": message, "type": kind}]
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in (extra or {}).items()]

    async def answer(send: Send) -> None:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return answer


def _too_large(limit: int) -> _Answer:
    return _problem(
        413,
        f"the body is larger than this endpoint takes ({limit // MIB} MiB)",
        "payload_too_large",
    )
