"""Errors the API turns into clear 4xx/5xx answers that name the field at fault."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

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


class ApiProblem(Exception):
    """A request that can't be served; rendered as `{"detail": [{"loc", "msg", "type"}]}`.

    The shape matches FastAPI's own validation errors, so clients parse one format.
    """

    def __init__(self, status: int, loc: tuple[str, ...], message: str, kind: str) -> None:
        super().__init__(message)
        self.status = status
        self.loc = loc
        self.message = message
        self.kind = kind

    def body(self) -> dict[str, object]:
        return {"detail": [{"loc": list(self.loc), "msg": self.message, "type": self.kind}]}


class UnknownJourney(ApiProblem):
    """A journey name that isn't deployed: 422 in a body or query, 404 in a path."""

    def __init__(
        self,
        name: str,
        known: list[str],
        loc: tuple[str, ...] = ("body", "journey"),
        status: int = 422,
    ) -> None:
        super().__init__(
            status,
            loc,
            f"unknown journey {name!r}; known: {', '.join(known)}",
            "unknown_journey",
        )


class LeadNotFound(ApiProblem):
    def __init__(self, lead_id: str, loc: tuple[str, ...] = ("body", "lead_id")) -> None:
        super().__init__(404, loc, f"no lead with id {lead_id!r}", "lead_not_found")


class TemporalUnavailable(ApiProblem):
    def __init__(self) -> None:
        super().__init__(
            503, (), "the workflow engine is unreachable; retry shortly", "temporal_unavailable"
        )


class FeedbackNotAllowed(ApiProblem):
    """Sales feedback that doesn't fit the lead's stage: 409, with the stage it is in."""

    def __init__(self, message: str, current_stage: str | None) -> None:
        super().__init__(409, ("body", "outcome"), message, "feedback_not_allowed")
        self.current_stage = current_stage

    def body(self) -> dict[str, object]:
        return super().body() | {"current_stage": self.current_stage}


class SignatureRejected(ApiProblem):
    def __init__(self, message: str) -> None:
        super().__init__(401, ("header", "x-nurture-signature"), message, "signature_invalid")


class UnknownCrmStatus(ApiProblem):
    def __init__(self, status: str, known: list[str]) -> None:
        super().__init__(
            422,
            ("body", "status"),
            f"unknown CRM status {status[:50]!r}; known: {', '.join(known)}",
            "unknown_crm_status",
        )


class LeadConflict(ApiProblem):
    """The lead given can't be reconciled with the leads we have (e.g. an email that
    belongs to a lead with another external id)."""

    def __init__(self, field: str, message: str, loc: tuple[str, ...] = ("body", "lead")) -> None:
        super().__init__(409, (*loc, field), message, "lead_conflict")


class NotYourLead(ApiProblem):
    """A sales rep asked for a lead assigned to someone else."""

    def __init__(self, lead_id: str) -> None:
        super().__init__(
            403, ("path", "lead_id"), f"lead {lead_id!r} is not assigned to you", "not_your_lead"
        )


class InvalidParameter(ApiProblem):
    """A query or path parameter that passed its type but not its meaning."""

    def __init__(self, loc: tuple[str, ...], message: str, kind: str = "value_error") -> None:
        super().__init__(422, loc, message, kind)


class FeedbackNotAnswered(ApiProblem):
    """The lead workflow did not answer in time (no worker running): 503, retry safely."""

    def __init__(self) -> None:
        super().__init__(
            503,
            (),
            "the lead's workflow did not answer in time (are the workers running?); repeat "
            "the request with the same Idempotency-Key to apply it once",
            "feedback_not_answered",
        )
