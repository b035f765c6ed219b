"""The journey DSL: frozen pydantic models, steps discriminated by `kind`.

A journey is data. It is validated when it is defined, snapshotted (with a content hash)
into each workflow's input, and interpreted by `workflows.journey.JourneyWorkflow`.
This module must stay free of I/O: workflows import it.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

STEP_ID_PATTERN = r"^[a-z][a-z0-9_-]{0,62}$"
JOURNEY_NAME_PATTERN = r"^[a-z][a-z0-9-]{0,62}$"


class EventType(StrEnum):
    """Engagement a lead can show; arrives at the workflow as a signal."""

    EMAIL_OPEN = "email_open"
    EMAIL_CLICK = "email_click"
    DOWNLOAD = "download"
    PAGE_VIEW = "page_view"
    FORM_SUBMIT = "form_submit"
    DEMO_REQUEST = "demo_request"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SendEmail(_Model):
    """Send the email rendered from `template`, then go on to `next`."""

    kind: Literal["send_email"] = "send_email"
    id: str = Field(pattern=STEP_ID_PATTERN)
    template: str = Field(min_length=1, max_length=200)
    next: str = Field(pattern=STEP_ID_PATTERN)


class WaitForEvent(_Model):
    """Wait until the lead shows one of `events` (go to `on_event`) or `timeout` passes.

    An event counts if it arrived after the previous wait ended (or the journey began), so
    a click that lands while the preceding email is still being sent is not missed.
    """

    kind: Literal["wait_for_event"] = "wait_for_event"
    id: str = Field(pattern=STEP_ID_PATTERN)
    events: tuple[EventType, ...] = Field(min_length=1)
    timeout: timedelta
    on_event: str = Field(pattern=STEP_ID_PATTERN)
    on_timeout: str = Field(pattern=STEP_ID_PATTERN)

    @model_validator(mode="after")
    def _timeout_is_positive(self) -> WaitForEvent:
        if self.timeout <= timedelta(0):
            raise ValueError("timeout must be positive")
        return self


class End(_Model):
    """The journey is over."""

    kind: Literal["end"] = "end"
    id: str = Field(pattern=STEP_ID_PATTERN)


Step = Annotated[SendEmail | WaitForEvent | End, Field(discriminator="kind")]


def successors(step: SendEmail | WaitForEvent | End) -> tuple[str, ...]:
    """The step ids a step can go on to."""
    match step:
        case SendEmail():
            return (step.next,)
        case WaitForEvent():
            return (step.on_event, step.on_timeout)
        case End():
            return ()


class JourneyDefinition(_Model):
    """A named journey: its steps, starting at `entry`."""

    name: str = Field(pattern=JOURNEY_NAME_PATTERN)
    description: str = ""
    entry: str = Field(pattern=STEP_ID_PATTERN)
    steps: tuple[Step, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _graph_is_sound(self) -> JourneyDefinition:
        # All problems in one error, so an engineer fixes a journey in one pass.
        problems = graph_problems(self)
        if problems:
            raise ValueError(f"journey {self.name!r} is invalid: " + "; ".join(problems))
        return self

    def step(self, step_id: str) -> SendEmail | WaitForEvent | End:
        """The step with `step_id` (the graph was validated, so it exists)."""
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    @property
    def version(self) -> str:
        """A content hash: two definitions with the same steps have the same version."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def templates(self) -> set[str]:
        """Every template the journey may send."""
        return {step.template for step in self.steps if isinstance(step, SendEmail)}


def graph_problems(definition: JourneyDefinition) -> list[str]:
    """Every structural problem: duplicate or dangling ids, unreachable steps, no end."""
    problems: list[str] = []
    ids = [step.id for step in definition.steps]
    known = set(ids)
    for step_id in sorted({i for i in ids if ids.count(i) > 1}):
        problems.append(f"step id {step_id!r} is used more than once")
    if definition.entry not in known:
        problems.append(f"entry {definition.entry!r} is not a step")
    for step in definition.steps:
        for target in successors(step):
            if target not in known:
                problems.append(f"step {step.id!r} goes to unknown step {target!r}")
    reachable: set[str] = set()
    frontier = [definition.entry] if definition.entry in known else []
    by_id = {step.id: step for step in definition.steps}
    while frontier:
        current = frontier.pop()
        if current in reachable or current not in by_id:
            continue
        reachable.add(current)
        frontier.extend(successors(by_id[current]))
    for step_id in ids:
        if step_id not in reachable and definition.entry in known:
            problems.append(f"step {step_id!r} is unreachable from {definition.entry!r}")
    if not any(isinstance(step, End) for step in definition.steps):
        problems.append("the journey has no end step")
    return list(dict.fromkeys(problems))
