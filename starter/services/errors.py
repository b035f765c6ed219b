"""Why a use case refuses a request: domain problems that name the field at fault.

Free of HTTP: each problem says what kind of refusal it is (`Refusal`); the API maps that
to a status code (`starter.api.problems`), the CLI prints the message, the bulk-enrollment
activity records it against the line."""

from __future__ import annotations

from enum import Enum


class Refusal(Enum):
    """The kinds of refusal, each one answer of the API (`starter.api.problems.STATUS`)."""

    INVALID = "invalid"  # the input means nothing we know
    UNAUTHENTICATED = "unauthenticated"  # a signature or credential that doesn't verify
    FORBIDDEN = "forbidden"  # the caller may not touch this
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"  # doesn't fit the state things are in
    TOO_LARGE = "too_large"
    UNAVAILABLE = "unavailable"  # something we depend on didn't answer; retry
    UPSTREAM_FAILED = "upstream_failed"  # done here, but a system told of it failed


class Problem(Exception):
    """A request a use case can't serve: where (`loc`, e.g. `("body", "lead", "email")`),
    why (`message`), a stable machine-readable `kind`, and the kind of `refusal`."""

    def __init__(self, refusal: Refusal, loc: tuple[str, ...], message: str, kind: str) -> None:
        super().__init__(message)
        self.refusal = refusal
        self.loc = loc
        self.message = message
        self.kind = kind

    def extra(self) -> dict[str, object]:
        """Fields the answer carries besides the problem itself (none by default)."""
        return {}


class UnknownJourney(Problem):
    """A journey name that isn't deployed: 422 in a body or query, 404 in a path."""

    def __init__(
        self,
        name: str,
        known: list[str],
        loc: tuple[str, ...] = ("body", "journey"),
        refusal: Refusal = Refusal.INVALID,
    ) -> None:
        super().__init__(
            refusal,
            loc,
            f"unknown journey {name!r}; known: {', '.join(known)}",
            "unknown_journey",
        )


class LeadNotFound(Problem):
    def __init__(self, lead_id: str, loc: tuple[str, ...] = ("body", "lead_id")) -> None:
        super().__init__(Refusal.NOT_FOUND, loc, f"no lead with id {lead_id!r}", "lead_not_found")


class TemporalUnavailable(Problem):
    def __init__(self) -> None:
        super().__init__(
            Refusal.UNAVAILABLE,
            (),
            "the workflow engine is unreachable; retry shortly",
            "temporal_unavailable",
        )


class FeedbackNotAllowed(Problem):
    """Sales feedback that doesn't fit the lead's stage: 409, with the stage it is in."""

    def __init__(self, message: str, current_stage: str | None) -> None:
        super().__init__(Refusal.CONFLICT, ("body", "outcome"), message, "feedback_not_allowed")
        self.current_stage = current_stage

    def extra(self) -> dict[str, object]:
        return {"current_stage": self.current_stage}


class SignatureRejected(Problem):
    def __init__(self, message: str) -> None:
        super().__init__(
            Refusal.UNAUTHENTICATED, ("header", "x-nurture-signature"), message, "signature_invalid"
        )


class UnknownCrmStatus(Problem):
    def __init__(self, status: str, known: list[str]) -> None:
        super().__init__(
            Refusal.INVALID,
            ("body", "status"),
            f"unknown CRM status {status[:50]!r}; known: {', '.join(known)}",
            "unknown_crm_status",
        )


class LeadConflict(Problem):
    """The lead given can't be reconciled with the leads we have (e.g. an email that
    belongs to a lead with another external id)."""

    def __init__(self, field: str, message: str, loc: tuple[str, ...] = ("body", "lead")) -> None:
        super().__init__(Refusal.CONFLICT, (*loc, field), message, "lead_conflict")


class NotYourLead(Problem):
    """A sales rep asked for a lead assigned to someone else."""

    def __init__(self, lead_id: str) -> None:
        super().__init__(
            Refusal.FORBIDDEN,
            ("path", "lead_id"),
            f"lead {lead_id!r} is not assigned to you",
            "not_your_lead",
        )


class InvalidParameter(Problem):
    """A query or path parameter that passed its type but not its meaning."""

    def __init__(self, loc: tuple[str, ...], message: str, kind: str = "value_error") -> None:
        super().__init__(Refusal.INVALID, loc, message, kind)


class FeedbackNotAnswered(Problem):
    """The lead workflow did not answer in time (no worker running): 503, retry safely."""

    def __init__(self) -> None:
        super().__init__(
            Refusal.UNAVAILABLE,
            (),
            "the lead's workflow did not answer in time (are the workers running?); repeat "
            "the request with the same Idempotency-Key to apply it once",
            "feedback_not_answered",
        )
