"""The OpenAPI document: the answers every keyed endpoint can give, documented once."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

_AUTH_ERRORS = {
    "401": {"description": "No API key, or an unknown one (`WWW-Authenticate: Bearer`)"},
    "403": {"description": "The key's role may not do this; the message names the roles"},
}
_UNAVAILABLE = {"503": {"description": "The workflow engine is unreachable; retry shortly"}}
_UNPARSEABLE = {"400": {"description": "The body can't be parsed (not UTF-8, not JSON)"}}
_TOO_LARGE = {"413": {"description": "The body is larger than this endpoint takes"}}


def document_common_errors(app: FastAPI) -> None:
    """Add the answers every keyed endpoint can give (401, 403, 503) to the OpenAPI spec,
    so clients and contract tests see them documented once, consistently."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        spec = build()
        for path, operations in spec.get("paths", {}).items():
            if not path.startswith("/v1/"):
                continue
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                if operation.get("security"):
                    for code, answer in _AUTH_ERRORS.items():
                        responses.setdefault(code, answer)
                for code, answer in _UNAVAILABLE.items():
                    responses.setdefault(code, answer)
                if operation.get("security"):
                    responses.setdefault("429", {"description": "Too many unknown keys from "
                                                 "this address; see Retry-After"})  # fmt: skip
                if "requestBody" in operation:
                    for code, answer in (_UNPARSEABLE | _TOO_LARGE).items():
                        responses.setdefault(code, answer)
        return spec

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override
