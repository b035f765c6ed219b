"""How refusals become HTTP answers: every problem is `{"detail": [{"loc", "msg", "type"}]}`
(the shape of FastAPI's own validation errors, so clients parse one format), with the
status its kind of refusal stands for."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from temporalio.service import RPCError, RPCStatusCode

from starter.services.errors import Problem, Refusal, TemporalUnavailable

log = logging.getLogger(__name__)

STATUS: dict[Refusal, int] = {
    Refusal.INVALID: 422,
    Refusal.UNAUTHENTICATED: status.HTTP_401_UNAUTHORIZED,
    Refusal.FORBIDDEN: status.HTTP_403_FORBIDDEN,
    Refusal.NOT_FOUND: status.HTTP_404_NOT_FOUND,
    Refusal.CONFLICT: status.HTTP_409_CONFLICT,
    Refusal.TOO_LARGE: 413,
    Refusal.UNAVAILABLE: status.HTTP_503_SERVICE_UNAVAILABLE,
    Refusal.UPSTREAM_FAILED: status.HTTP_502_BAD_GATEWAY,
}

# The longest rejected value a 422 echoes back; longer ones (a 10 MB property) are left out.
MAX_ECHO = 100


def _echoable(value: object) -> bool:
    if value is None or isinstance(value, bool):
        return True
    if isinstance(value, int):
        return abs(value) < 10**15
    if isinstance(value, float):
        return math.isfinite(value)  # JSON has no inf or NaN
    return isinstance(value, str) and len(value) <= MAX_ECHO


def safe_errors(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, object]]:
    """Validation errors as the API sends them: location, message and type, with the
    rejected value and the rule's context only when small, finite scalars. Never a huge or
    unserialisable echo (a 422 that can't be written would be a 500)."""
    safe: list[dict[str, object]] = []
    for error in errors:
        item: dict[str, object] = {
            "loc": [str(part) if not isinstance(part, int) else part for part in error["loc"]],
            "msg": str(error.get("msg", ""))[:500],
            "type": str(error.get("type", "value_error")),
        }
        if "input" in error and _echoable(error["input"]):
            item["input"] = error["input"]
        context = {k: v for k, v in (error.get("ctx") or {}).items() if _echoable(v)}
        if context:
            item["ctx"] = context
        safe.append(item)
    return safe


def problem_body(problem: Problem) -> dict[str, object]:
    """The JSON body of a refusal."""
    detail = {"loc": list(problem.loc), "msg": problem.message, "type": problem.kind}
    return {"detail": [detail]} | problem.extra()


def problem_response(problem: Problem) -> JSONResponse:
    """The answer to a refusal."""
    return JSONResponse(problem_body(problem), status_code=STATUS[problem.refusal])


async def _problem(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    return problem_response(exc)


async def _invalid(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": safe_errors(exc.errors())}, status_code=422)


async def _temporal_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RPCError)
    if exc.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
        return problem_response(TemporalUnavailable())
    log.exception("Temporal refused a request")
    refused = {"loc": [], "msg": "the workflow engine refused the request"}
    refused["type"] = "temporal_error"
    return JSONResponse({"detail": [refused]}, status_code=status.HTTP_502_BAD_GATEWAY)


def answer_problems(app: FastAPI) -> None:
    """Answer refusals, invalid requests and Temporal errors with clear 4xx/5xx bodies."""
    app.add_exception_handler(Problem, _problem)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(RPCError, _temporal_error)
