"""The journey DSL: frozen pydantic models, steps discriminated by `kind`.

A journey is data. Its structure is validated when it is defined (this module), its
templates by `journeys.validation`; it is snapshotted (with a content hash) into each
workflow's input and interpreted by `workflows.journey.JourneyWorkflow`.
This module must stay free of I/O: workflows import it.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from journeys.events.names import DECLARED_EVENT_TYPE, CustomEventType
from journeys.topics import JOURNEY_TOPIC, TOPIC_NAMES

STEP_ID_PATTERN = r"^[a-z][a-z0-9_-]{0,62}$"
DEFER_GRAPH_CHECK = "defer_graph_check"
JOURNEY_NAME_PATTERN = r"^[a-z][a-z0-9-]{0,62}$"
StepId = Annotated[str, Field(pattern=STEP_ID_PATTERN)]


class EventType(StrEnum):
    """Engagement a lead can show; arrives at the workflow as a signal."""

    EMAIL_OPEN = "email_open"
    EMAIL_CLICK = "email_click"
    DOWNLOAD = "download"
    PAGE_VIEW = "page_view"
    FORM_START = "form_start"
    FORM_SUBMIT = "form_submit"
    WEBINAR_ATTENDED = "webinar_attended"
    DEMO_REQUEST = "demo_request"
    UNSUBSCRIBE = "unsubscribe"
    EMAIL_BOUNCE = "email_bounce"


# Any declared event type, built-in (an `EventType`) or custom (`journeys/events/catalog.py`):
# checked against the registry (`journeys.event_types`), so a journey can't wait for or exit
# on a type no event can ever have. Serialised as its plain name.
DeclaredEventType = Annotated[EventType | CustomEventType, DECLARED_EVENT_TYPE]


class LifecycleStage(StrEnum):
    """Where a lead stands with marketing and sales."""

    SUBSCRIBER = "subscriber"
    LEAD = "lead"
    MQL = "mql"
    SAL = "sal"
    SQL = "sql"
    OPPORTUNITY = "opportunity"
    CUSTOMER = "customer"
    RECYCLED = "recycled"
    DISQUALIFIED = "disqualified"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --- conditions --------------------------------------------------------------------------

# What a branch may look at. `property:<name>` reads a custom lead property.
LEAD_ATTRIBUTES = (
    "persona",
    "score",
    "fit_score",
    "behaviour_score",
    "lifecycle_stage",
    "title",
    "seniority",
    "company_size",
    "industry",
    "country",
)


class Condition(_Model):
    """`attribute op value`, e.g. `company_size gte 200` or `property:plan eq "trial"`."""

    attribute: str = Field(
        pattern=r"^(" + "|".join(LEAD_ATTRIBUTES) + r"|property:[a-z0-9_]{1,64})$"
    )
    op: Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "contains", "exists"]
    value: str | int | float | bool | tuple[str | int | float, ...] | None = None


class BranchCase(_Model):
    """Go to `next` when every condition holds: a branch's case, and a wait's condition
    outcome (`ConditionOutcome`, the same model)."""

    when: tuple[Condition, ...] = Field(min_length=1)
    next: StepId


# In a `wait_for_event`, beside `EventOutcome`: checked when the wait begins and as events
# arrive.
ConditionOutcome = BranchCase


class Variant(_Model):
    """One arm of an A/B test: a template and its relative weight."""

    name: str = Field(pattern=r"^[a-z0-9_-]{1,32}$")
    template: str = Field(min_length=1, max_length=200)
    weight: int = Field(default=1, ge=1, le=1000)


class SendWindow(_Model):
    """Hours and weekdays (in the lead's timezone) when marketing email may go out."""

    start_hour: int = Field(default=9, ge=0, le=23)
    end_hour: int = Field(default=17, ge=1, le=24)
    weekdays: tuple[int, ...] = Field(default=(0, 1, 2, 3, 4), min_length=1)  # Monday = 0
    default_timezone: str = "UTC"

    @model_validator(mode="after")
    def _window_is_sane(self) -> SendWindow:
        if self.start_hour >= self.end_hour:
            raise ValueError("start_hour must be before end_hour")
        if any(day not in range(7) for day in self.weekdays):
            raise ValueError("weekdays are 0 (Monday) to 6 (Sunday)")
        return self


# --- steps -------------------------------------------------------------------------------


class SendEmail(_Model):
    """Send `template` (or one of `variants`, chosen per lead, deterministically), go to `next`.

    `timing`: an `answer` replies to the lead's own action and goes out at once (quiet hours
    and the frequency cap don't hold it); a `scheduled` email waits for both; `auto` is an
    answer iff it is the first email after the entry with no wait before it
    (`journeys.send_policy.answer_steps`). Consent and suppression hold every email.
    """

    kind: Literal["send_email"] = "send_email"
    id: StepId
    template: str | None = Field(default=None, min_length=1, max_length=200)
    variants: tuple[Variant, ...] = ()
    next: StepId
    # Left out of the serialised form when "auto": journeys that don't set it keep their
    # content hash (`version`) and the workflow inputs they had before the field existed.
    timing: Literal["auto", "answer", "scheduled"] = Field(
        default="auto", exclude_if=lambda value: value == "auto"
    )

    @model_validator(mode="after")
    def _template_or_variants(self) -> SendEmail:
        if (self.template is None) == (not self.variants):
            raise ValueError("give either a template or at least two variants")
        if self.variants and len(self.variants) < 2:
            raise ValueError("an A/B test needs at least two variants")
        if len({v.name for v in self.variants}) != len(self.variants):
            raise ValueError("variant names must differ")
        return self

    def templates(self) -> tuple[str, ...]:
        return (self.template,) if self.template else tuple(v.template for v in self.variants)


class Wait(_Model):
    """Wait for a `duration`; `until` a moment; until the moment in the lead property
    `until_property` (shifted by `offset`, e.g. one day before a webinar); or until the
    lead's next `send_window` opens."""

    kind: Literal["wait"] = "wait"
    id: StepId
    duration: timedelta | None = None
    until: AwareDatetime | None = None
    until_property: str | None = Field(default=None, pattern=r"^[a-z0-9_]{1,64}$")
    offset: timedelta = timedelta(0)
    send_window: SendWindow | None = None
    next: StepId

    @model_validator(mode="after")
    def _exactly_one_target(self) -> Wait:
        targets = (self.duration, self.until, self.until_property, self.send_window)
        if sum(x is not None for x in targets) != 1:
            raise ValueError("give exactly one of duration, until, until_property, send_window")
        if self.offset and self.until_property is None:
            raise ValueError("offset goes with until_property")
        if self.duration is not None and self.duration <= timedelta(0):
            raise ValueError("duration must be positive")
        return self


class EventOutcome(_Model):
    """When one of `events` arrives, go to `next`."""

    events: tuple[DeclaredEventType, ...] = Field(min_length=1)
    next: StepId


class WaitForEvent(_Model):
    """Wait until the lead shows an event of one of the `outcomes`, one of the `conditions`
    holds (e.g. `score gte 50`), or `timeout` passes.

    An event counts if it arrived after the previous wait ended (or the journey began), so
    a click that lands while the preceding email is still being sent is not missed.
    Conditions are checked when the wait begins and after every event.
    The short form `events=…, on_event=…` is one outcome.
    """

    kind: Literal["wait_for_event"] = "wait_for_event"
    id: StepId
    outcomes: tuple[EventOutcome, ...] = ()
    conditions: tuple[ConditionOutcome, ...] = ()
    timeout: timedelta
    on_timeout: StepId

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, data: Any) -> Any:
        if isinstance(data, dict) and "events" in data and "outcomes" not in data:
            data = dict(data)
            data["outcomes"] = ({"events": data.pop("events"), "next": data.pop("on_event")},)
        return data

    @model_validator(mode="after")
    def _timeout_is_positive(self) -> WaitForEvent:
        if not self.outcomes and not self.conditions:
            raise ValueError("a wait_for_event needs at least one event outcome or condition")
        if self.timeout <= timedelta(0):
            raise ValueError("timeout must be positive")
        return self


class Branch(_Model):
    """Go to the first case whose conditions hold, else to `default`."""

    kind: Literal["branch"] = "branch"
    id: StepId
    cases: tuple[BranchCase, ...] = Field(min_length=1)
    default: StepId | None = None


class SetLeadFields(_Model):
    """Adjust the score, move the lifecycle stage, and/or set lead properties."""

    kind: Literal["set"] = "set"
    id: StepId
    add_score: int | None = Field(default=None, ge=-1000, le=1000)
    stage: LifecycleStage | None = None
    properties: dict[str, str | int | float | bool | None] = Field(default_factory=dict)
    next: StepId

    @model_validator(mode="after")
    def _sets_something(self) -> SetLeadFields:
        if self.add_score is None and self.stage is None and not self.properties:
            raise ValueError("a set step must set add_score, stage or properties")
        return self


class HandOver(_Model):
    """Hand the lead to sales as an MQL (through the CRM activity), then go to `next`."""

    kind: Literal["hand_over"] = "hand_over"
    id: StepId
    reason: str = Field(default="journey", max_length=200)
    next: StepId


# Internal emails to the lead's owner, a sales rep (templates under templates/notifications).
OwnerNotification = Literal["mql_assigned", "sla_reminder", "account_qualified", "mql_alert"]


class NotifyOwner(_Model):
    """Email the lead's owner an internal notification (with the score explained), once per
    visit, then go to `next`. A lead without an owner: nothing is sent."""

    kind: Literal["notify_owner"] = "notify_owner"
    id: StepId
    template: OwnerNotification
    next: StepId


class End(_Model):
    """The journey is over."""

    kind: Literal["end"] = "end"
    id: StepId


AnyStep = SendEmail | Wait | WaitForEvent | Branch | SetLeadFields | HandOver | NotifyOwner | End
Step = Annotated[AnyStep, Field(discriminator="kind")]


def successors(step: AnyStep) -> tuple[str, ...]:
    """The step ids a step can go on to."""
    match step:
        case SendEmail() | Wait() | SetLeadFields() | HandOver() | NotifyOwner():
            return (step.next,)
        case WaitForEvent():
            return (
                *(o.next for o in step.outcomes),
                *(c.next for c in step.conditions),
                step.on_timeout,
            )
        case Branch():
            return (*(c.next for c in step.cases), *((step.default,) if step.default else ()))
        case End():
            return ()


def waits(step: AnyStep) -> bool:
    """Whether a step lets durable time pass (a loop must contain one)."""
    return isinstance(step, Wait | WaitForEvent)


# --- journey -----------------------------------------------------------------------------


class ExitGoal(_Model):
    """Leave the journey the moment the lead reaches a goal, from whatever step it is in."""

    name: str = Field(pattern=r"^[a-z0-9_-]{1,64}$")
    on_event: DeclaredEventType | None = None
    on_stage: LifecycleStage | None = None
    # The lead left this segment (journeys/segments): e.g. a pricing track ends when the
    # visits stop.
    on_segment_exit: str | None = Field(default=None, pattern=r"^[a-z0-9-]{1,64}$")

    @model_validator(mode="after")
    def _has_a_trigger(self) -> ExitGoal:
        given = [self.on_event, self.on_stage, self.on_segment_exit]
        if sum(g is not None for g in given) != 1:
            raise ValueError(
                "an exit goal needs exactly one of on_event, on_stage, on_segment_exit"
            )
        return self


class Reentry(_Model):
    """May a lead enter this journey again? `once`, `always` (when not inside), or after `every`."""

    policy: Literal["once", "always", "periodic"] = "once"
    every: timedelta | None = None

    @model_validator(mode="after")
    def _period_fits_policy(self) -> Reentry:
        if (self.policy == "periodic") != (self.every is not None):
            raise ValueError("`every` goes with (and only with) policy 'periodic'")
        return self


class JourneyDefinition(_Model):
    """A named journey: its steps, starting at `entry`, its exit goals and re-entry policy."""

    name: str = Field(pattern=JOURNEY_NAME_PATTERN)
    description: str = ""
    entry: StepId
    steps: tuple[Step, ...] = Field(min_length=1)
    exit_goals: tuple[ExitGoal, ...] = ()
    reentry: Reentry = Reentry()
    # The topic its emails belong to (journeys.topics): a lead who opted out of it gets
    # none of them. Left out of the snapshot (`exclude`), so workflow inputs and versions
    # stay as they were: the email activity reads it from the registry by journey name.
    topic: str = Field(default=JOURNEY_TOPIC, exclude=True)

    @model_validator(mode="after")
    def _topic_is_declared(self) -> JourneyDefinition:
        if self.topic not in TOPIC_NAMES:
            known = ", ".join(sorted(TOPIC_NAMES))
            raise ValueError(f"topic {self.topic!r} is not declared (journeys/topics.py: {known})")
        return self

    @model_validator(mode="after")
    def _graph_is_sound(self, info: ValidationInfo) -> JourneyDefinition:
        # journeys.validation collects these together with template problems instead.
        if info.context and info.context.get(DEFER_GRAPH_CHECK):
            return self
        # All problems in one error, so an engineer fixes a journey in one pass.
        problems = graph_problems(self)
        if problems:
            raise ValueError(f"journey {self.name!r} is invalid: " + "; ".join(problems))
        return self

    def step(self, step_id: str) -> AnyStep:
        """The step with `step_id` (the graph was validated, so it exists)."""
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    @property
    def version(self) -> str:
        """A content hash: two definitions with the same content have the same version."""
        content = self.model_dump(mode="json")
        for goal in content["exit_goals"]:  # absent before segments: versions stay as they were
            if goal.get("on_segment_exit") is None:
                goal.pop("on_segment_exit", None)
        canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def templates(self) -> set[str]:
        """Every template the journey may send."""
        return {t for step in self.steps if isinstance(step, SendEmail) for t in step.templates()}


def graph_problems(definition: JourneyDefinition) -> list[str]:
    """Every structural problem: duplicate or dangling ids, unreachable steps, no end,
    a branch without a default, a loop that never waits."""
    problems: list[str] = []
    ids = [step.id for step in definition.steps]
    by_id = {step.id: step for step in definition.steps}
    for step_id in sorted({i for i in ids if ids.count(i) > 1}):
        problems.append(f"step id {step_id!r} is used more than once")
    if definition.entry not in by_id:
        problems.append(f"entry {definition.entry!r} is not a step")
    for step in definition.steps:
        for target in successors(step):
            if target not in by_id:
                problems.append(f"step {step.id!r} goes to unknown step {target!r}")
        if isinstance(step, Branch) and step.default is None:
            problems.append(f"branch {step.id!r} has no default")
    if definition.entry in by_id:
        reachable = _reachable(by_id, definition.entry)
        for step_id in ids:
            if step_id not in reachable:
                problems.append(f"step {step_id!r} is unreachable from {definition.entry!r}")
    if not any(isinstance(step, End) for step in definition.steps):
        problems.append("the journey has no end step")
    problems.extend(_loops_without_wait(by_id))
    goal_names = [g.name for g in definition.exit_goals]
    for name in sorted({n for n in goal_names if goal_names.count(n) > 1}):
        problems.append(f"exit goal {name!r} is defined more than once")
    return list(dict.fromkeys(problems))


def _reachable(by_id: dict[str, AnyStep], start: str) -> set[str]:
    seen: set[str] = set()
    frontier = [start]
    while frontier:
        current = frontier.pop()
        if current in seen or current not in by_id:
            continue
        seen.add(current)
        frontier.extend(successors(by_id[current]))
    return seen


def _loops_without_wait(by_id: dict[str, AnyStep]) -> list[str]:
    """Cycles made only of steps that don't wait: they would spin (and send) forever."""
    instant = {i: s for i, s in by_id.items() if not waits(s)}
    problems = []
    reported: set[frozenset[str]] = set()
    for start in sorted(instant):
        # Depth-first search for a path of instant steps leading back to `start`.
        stack: list[tuple[str, list[str]]] = [(start, [start])]
        while stack:
            current, path = stack.pop()
            for target in successors(instant[current]):
                if target == start:
                    cycle = frozenset(path)
                    if cycle not in reported:
                        reported.add(cycle)
                        loop = " → ".join([*path, start])
                        problems.append(f"loop without a wait: {loop}")
                elif target in instant and target not in path:
                    stack.append((target, [*path, target]))
    return problems
