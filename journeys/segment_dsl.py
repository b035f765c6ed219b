"""Segments as code: frozen pydantic models, conditions discriminated by `kind`.

A segment is a named condition on a lead — its fields, the journeys it is in, the events
it showed (or did not show) and the dates in its properties:

    SEGMENT = define_segment(
        "pricing-visitors",
        "Looked at pricing three times in a week.",
        events("page_view", at_least=3, within=timedelta(days=7),
               where=[prop("url", "contains", "/pricing")]),
    )

The models check shapes and types only, so the helpers (`field`, `events`, `all_of`, …)
never raise on a wrong *value*: every rule on values (positive windows, `at_least >= 1`,
ops that fit the attribute, …) is in `condition_problems`, which `SegmentDefinition` runs
on the whole tree. `journeys.segment_validation.define_segment` adds the registry checks
(event types, journeys) and reports everything in one error; `journeys.segment_rules`
evaluates a definition. This module must stay free of I/O.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from journeys.consent import ConsentStatus
from journeys.dsl import LEAD_ATTRIBUTES, LifecycleStage
from journeys.seniority import Seniority

SEGMENT_NAME_PATTERN = r"^[a-z0-9-]{1,64}$"
PROPERTY_NAME_PATTERN = r"^[a-z0-9_]{1,64}$"
# In `SegmentDefinition.model_validate(..., context={DEFER_SEGMENT_CHECK: True})` the value
# rules are left to the caller (`define_segment`, which collects them with the rest).
DEFER_SEGMENT_CHECK = "defer_segment_check"

FieldOp = Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "contains", "exists"]
FieldValue = str | int | float | bool | tuple[str | int | float, ...] | None
ALL_OPS: tuple[str, ...] = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "contains", "exists")

# What a segment may look at beyond a branch's `journeys.dsl.LEAD_ATTRIBUTES`.
SEGMENT_ATTRIBUTES = (
    *LEAD_ATTRIBUTES,
    "consent_status",
    "topics",
    "account_score",
    "account_qualified",
    "created_at",
)

_NUMBER = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "exists")
_CHOICE = ("eq", "ne", "in", "exists")
_TEXT = ("eq", "ne", "in", "contains", "exists")
# The ops that make sense for each attribute (`property:<name>` takes any op).
ATTRIBUTE_OPS: dict[str, tuple[str, ...]] = {
    "persona": _CHOICE,
    "score": _NUMBER,
    "fit_score": _NUMBER,
    "behaviour_score": _NUMBER,
    "lifecycle_stage": _CHOICE,
    "title": _TEXT,
    "seniority": _CHOICE,
    "company_size": _NUMBER,
    "industry": _TEXT,
    "country": _CHOICE,
    "consent_status": _CHOICE,
    "topics": ("contains",),  # a list of topics: `contains` is membership of one topic
    "account_score": _NUMBER,
    "account_qualified": ("eq", "ne", "exists"),
    "created_at": ("gt", "gte", "lt", "lte", "exists"),  # against an ISO date or datetime
}
NUMERIC_ATTRIBUTES = frozenset(a for a, ops in ATTRIBUTE_OPS.items() if ops == _NUMBER)
# Attributes with a closed vocabulary: a value outside it is a typo.
ATTRIBUTE_CHOICES: dict[str, frozenset[str]] = {
    "lifecycle_stage": frozenset(LifecycleStage),
    "consent_status": frozenset(ConsentStatus),
    "seniority": frozenset(Seniority),
}


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --- conditions --------------------------------------------------------------------------


class LeadField(_Model):
    """`attribute op value` on the lead, as in a journey branch (`journeys.dsl.Condition`),
    plus `consent_status`, `topics` (`contains` one topic), `account_score`,
    `account_qualified` and `created_at` (compared with an ISO date or datetime)."""

    kind: Literal["field"] = "field"
    attribute: str
    op: FieldOp
    value: FieldValue = None


class InJourney(_Model):
    """The lead is in journey `journey` now (`completed`: has finished it)."""

    kind: Literal["in_journey"] = "in_journey"
    journey: str
    completed: bool = False


class PropertyFilter(_Model):
    """`property op value` on one event's properties, e.g. `url contains "/pricing"`."""

    property: str
    op: FieldOp
    value: FieldValue = None


class EventCount(_Model):
    """At least `at_least` events of `type` (matching every `where`) within the last
    `within`: an event that occurred at t counts from t until t + within."""

    kind: Literal["events"] = "events"
    type: str
    at_least: int = 1
    within: timedelta
    where: tuple[PropertyFilter, ...] = ()


class NoEvents(_Model):
    """No event of any of `types` for (at least) `for` (`for_` in Python).

    The silence runs from the latest of the lead's creation and its last such event, so a
    lead created less than `for` ago is *not* a member — it has not been silent that long.
    A lead without a known `created_at` is silent since its last such event (or forever).
    Membership begins at exactly last + for.
    """

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)

    kind: Literal["no_events"] = "no_events"
    types: tuple[str, ...]
    for_: timedelta = Field(alias="for")


class DateWithin(_Model):
    """The moment in lead property `property` (an ISO date or datetime; a date is midnight
    UTC, a naive datetime is UTC) is within `within` of now.

    `ahead`: now < moment <= now + within — a member from `within` before the moment
    until the moment itself. `past`: moment <= now < moment + within.
    """

    kind: Literal["date_within"] = "date_within"
    property: str
    within: timedelta
    direction: Literal["ahead", "past"] = "ahead"


class AllOf(_Model):
    """Every condition in `of` holds."""

    kind: Literal["all"] = "all"
    of: tuple[SegmentCondition, ...]


class AnyOf(_Model):
    """At least one condition in `of` holds."""

    kind: Literal["any"] = "any"
    of: tuple[SegmentCondition, ...]


class Not(_Model):
    """`condition` does not hold."""

    kind: Literal["not"] = "not"
    condition: SegmentCondition


AnyCondition = LeadField | InJourney | EventCount | NoEvents | DateWithin | AllOf | AnyOf | Not
SegmentCondition = Annotated[AnyCondition, Field(discriminator="kind")]


class SegmentDefinition(_Model):
    """A named segment: the leads for which `condition` holds."""

    name: str = Field(pattern=SEGMENT_NAME_PATTERN)
    description: str
    condition: SegmentCondition

    @model_validator(mode="after")
    def _values_are_sound(self, info: ValidationInfo) -> SegmentDefinition:
        # journeys.segment_validation collects these together with the registry checks.
        if info.context and info.context.get(DEFER_SEGMENT_CHECK):
            return self
        problems = condition_problems(self.condition)
        if problems:
            raise ValueError(f"segment {self.name!r} is invalid: " + "; ".join(problems))
        return self

    @property
    def version(self) -> str:
        """A content hash: two definitions with the same content have the same version."""
        data = self.model_dump(mode="json", by_alias=True)
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


for _model in (AllOf, AnyOf, Not, SegmentDefinition):
    _model.model_rebuild()


# --- helpers: segments that read well in code ---------------------------------------------


def field(attribute: str, op: FieldOp, value: FieldValue | list[Any] = None) -> LeadField:
    """`field("lifecycle_stage", "eq", "mql")`, `field("property:plan", "in", ["a", "b"])`."""
    return LeadField.model_validate({"attribute": attribute, "op": op, "value": value})


def prop(property: str, op: FieldOp, value: FieldValue | list[Any] = None) -> PropertyFilter:
    """An event property filter: `prop("url", "contains", "/pricing")`."""
    return PropertyFilter.model_validate({"property": property, "op": op, "value": value})


def events(
    type: str,
    *,
    within: timedelta,
    at_least: int = 1,
    where: Iterable[PropertyFilter] = (),
) -> EventCount:
    """`events("page_view", at_least=3, within=timedelta(days=7), where=[prop(...)])`."""
    return EventCount(type=type, at_least=at_least, within=within, where=tuple(where))


def no_events(types: str | Iterable[str], *, for_: timedelta) -> NoEvents:
    """`no_events(("email_open", "email_click"), for_=timedelta(days=60))`."""
    names = (types,) if isinstance(types, str) else tuple(types)
    return NoEvents.model_validate({"types": names, "for": for_})


def in_journey(journey: str, *, completed: bool = False) -> InJourney:
    """`in_journey("welcome")`; `in_journey("welcome", completed=True)`."""
    return InJourney(journey=journey, completed=completed)


def date_within(
    property: str, within: timedelta, *, direction: Literal["ahead", "past"] = "ahead"
) -> DateWithin:
    """`date_within("trial_ends_at", timedelta(days=3))`: the trial ends in 3 days or less."""
    return DateWithin(property=property, within=within, direction=direction)


def all_of(*conditions: AnyCondition) -> AllOf:
    """Every one of `conditions` holds."""
    return AllOf(of=conditions)


def any_of(*conditions: AnyCondition) -> AnyOf:
    """At least one of `conditions` holds."""
    return AnyOf(of=conditions)


def not_(condition: AnyCondition) -> Not:
    """`condition` does not hold."""
    return Not(condition=condition)


# --- walking and value rules -------------------------------------------------------------


def walk(condition: AnyCondition, loc: str = "condition") -> Iterator[tuple[str, AnyCondition]]:
    """Every condition in the tree with its location (`condition.of.1.condition`), parents
    first."""
    yield loc, condition
    match condition:
        case AllOf() | AnyOf():
            for index, child in enumerate(condition.of):
                yield from walk(child, f"{loc}.of.{index}")
        case Not():
            yield from walk(condition.condition, f"{loc}.condition")
        case _:
            pass


def parse_moment(raw: Any) -> datetime | None:
    """An aware datetime from a datetime or an ISO date/datetime string (naive is UTC), or
    None when `raw` is not a moment — the same reading as a `wait` on `until_property`."""
    if isinstance(raw, datetime):
        moment = raw
    elif isinstance(raw, str):
        try:
            moment = datetime.fromisoformat(raw)
        except ValueError:
            return None
    else:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _value_problems(loc: str, attribute: str, op: str, value: Any) -> list[str]:
    """A value that cannot match what `attribute` holds, for `op`."""
    if op == "exists":
        ok = value is None or isinstance(value, bool)
        return [] if ok else [f"{loc}.value: `exists` takes true, false or nothing"]
    if value is None:
        return [f"{loc}.value: op {op!r} needs a value"]
    if op == "in":
        if not isinstance(value, tuple) or not value:
            return [f"{loc}.value: `in` takes a non-empty list"]
        values: tuple[Any, ...] = value
    elif isinstance(value, tuple):
        return [f"{loc}.value: only `in` takes a list"]
    else:
        values = (value,)
    problems = []
    if op == "contains" and not all(isinstance(v, str) and v for v in values):
        problems.append(f"{loc}.value: `contains` takes a non-empty string")
    if attribute in NUMERIC_ATTRIBUTES and not all(_is_number(v) for v in values):
        problems.append(f"{loc}.value: {attribute} is a number, not {value!r}")
    if attribute == "account_qualified" and not isinstance(value, bool):
        problems.append(f"{loc}.value: account_qualified is true or false, not {value!r}")
    if attribute == "created_at" and parse_moment(value) is None:
        problems.append(f"{loc}.value: created_at compares with an ISO date, not {value!r}")
    choices = ATTRIBUTE_CHOICES.get(attribute)
    if choices is not None:
        for v in values:
            if not isinstance(v, str) or v.casefold() not in choices:
                problems.append(
                    f"{loc}.value: {v!r} is not a {attribute} (one of {', '.join(sorted(choices))})"
                )
    if attribute.startswith("property:") and op in ("gt", "gte", "lt", "lte"):
        if not all(_is_number(v) or isinstance(v, str) for v in values):
            problems.append(f"{loc}.value: {op!r} compares with a number or a string")
    return problems


def _field_problems(loc: str, condition: LeadField) -> list[str]:
    attribute, op = condition.attribute, condition.op
    if attribute.startswith("property:"):
        name = attribute.removeprefix("property:")
        if not _matches(PROPERTY_NAME_PATTERN, name):
            return [f"{loc}.attribute: property name {name!r} is not [a-z0-9_]{{1,64}}"]
        return _value_problems(loc, attribute, op, condition.value)
    if attribute not in SEGMENT_ATTRIBUTES:
        return [
            f"{loc}.attribute: unknown attribute {attribute!r} (one of "
            f"{', '.join(SEGMENT_ATTRIBUTES)}, or property:<name>)"
        ]
    allowed = ATTRIBUTE_OPS.get(attribute, ALL_OPS)
    if op not in allowed:
        return [
            f"{loc}.op: op {op!r} does not fit attribute {attribute!r} "
            f"(use one of {', '.join(allowed)})"
        ]
    return _value_problems(loc, attribute, op, condition.value)


def _matches(pattern: str, text: str) -> bool:
    return re.fullmatch(pattern, text) is not None


def _window_problems(loc: str, name: str, window: timedelta) -> list[str]:
    return [] if window > timedelta(0) else [f"{loc}.{name}: must be positive, not {window}"]


def condition_problems(condition: AnyCondition, loc: str = "condition") -> list[str]:
    """Every problem of a condition tree's values that needs no registry: windows, counts,
    ops that don't fit their attribute, values that can't match, empty combinators."""
    problems: list[str] = []
    for where, node in walk(condition, loc):
        match node:
            case LeadField():
                problems.extend(_field_problems(where, node))
            case InJourney():
                if not node.journey:
                    problems.append(f"{where}.journey: name a journey")
            case EventCount():
                if not node.type:
                    problems.append(f"{where}.type: name an event type")
                if node.at_least < 1:
                    problems.append(f"{where}.at_least: must be at least 1, not {node.at_least}")
                problems.extend(_window_problems(where, "within", node.within))
                for index, event_filter in enumerate(node.where):
                    at = f"{where}.where.{index}"
                    if not _matches(PROPERTY_NAME_PATTERN, event_filter.property):
                        problems.append(
                            f"{at}.property: {event_filter.property!r} is not [a-z0-9_]{{1,64}}"
                        )
                    problems.extend(
                        _value_problems(
                            at,
                            f"property:{event_filter.property}",
                            event_filter.op,
                            event_filter.value,
                        )
                    )
            case NoEvents():
                if not node.types:
                    problems.append(f"{where}.types: name at least one event type")
                problems.extend(_window_problems(where, "for", node.for_))
            case DateWithin():
                if not _matches(PROPERTY_NAME_PATTERN, node.property):
                    problems.append(f"{where}.property: {node.property!r} is not [a-z0-9_]{{1,64}}")
                problems.extend(_window_problems(where, "within", node.within))
            case AllOf() | AnyOf():
                if not node.of:
                    problems.append(f"{where}.of: give at least one condition")
            case Not():
                pass
    return list(dict.fromkeys(problems))
