"""Security headers on every response: pages (unsubscribe, confirmation, sign-up, inbox),
the API's JSON and its docs. A response that sets a header itself keeps its own."""

from __future__ import annotations

from starter.api.request_guard import ASGIApp, Message, Receive, Scope, Send

# Nurture's pages are server-rendered HTML with inline styles, no scripts, forms to itself.
PAGE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
# FastAPI's /docs and /redoc load Swagger UI / ReDoc from jsDelivr and start them inline.
DOCS_CSP = (
    "default-src 'none'; script-src https://cdn.jsdelivr.net 'unsafe-inline'; "
    "style-src https://cdn.jsdelivr.net 'unsafe-inline'; "
    "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; "
    "font-src https://fonts.gstatic.com; connect-src 'self'; worker-src blob:; "
    "frame-ancestors 'none'; base-uri 'none'"
)
DOCS_PATHS = ("/docs", "/docs/oauth2-redirect", "/redoc")


class SecurityHeaders:
    """Adds CSP, frame and referrer policy, nosniff, and HSTS when served over https."""

    def __init__(self, app: ASGIApp, *, https: bool) -> None:
        self.app = app
        self.https = https

    def headers_for(self, path: str) -> list[tuple[bytes, bytes]]:
        csp = DOCS_CSP if path in DOCS_PATHS else PAGE_CSP
        found = [
            (b"content-security-policy", csp.encode()),
            (b"x-frame-options", b"DENY"),
            (b"x-content-type-options", b"nosniff"),
            # Links carry signed tokens: never hand them to another site as a referrer.
            # (`no-referrer` would also make browsers send `Origin: null` on our own
            # forms, which the same-site checks then refuse.)
            (b"referrer-policy", b"same-origin"),
        ]
        if self.https:
            found.append((b"strict-transport-security", b"max-age=31536000; includeSubDomains"))
        return found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self.headers_for(scope["path"])

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = [
                    *message.get("headers", []),
                    *((name, value) for name, value in extra if name not in present),
                ]
            await send(message)

        await self.app(scope, receive, with_headers)
