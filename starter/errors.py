"""Errors the API turns into clear 4xx/5xx answers that name the field at fault."""

from __future__ import annotations


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
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(
            422,
            ("body", "journey"),
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
