"""What starts a journey by itself: triggers, declared with the journey (a catalog module's
`TRIGGERS`), and the pure rules that match them against what happened to a lead.

A trigger fires once per cause: an event id, an entry into a segment, a stage reached in
an MQL cycle. The lead workflow reports causes; the trigger activity records each firing
under a unique key before it starts the journey, so a repeated event, a retried request or
a crashed worker starts nothing twice. The journey's re-entry policy still applies.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from journeys.dsl import DeclaredEventType, LifecycleStage


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EventFilter(_Model):
    """A condition on an event's property: `url contains /pricing`, `plan eq pro`."""

    property: str = Field(pattern=r"^[a-z0-9_]{1,64}$")
    op: Literal["eq", "ne", "contains", "exists"] = "eq"
    value: str | int | float | bool | None = None

    def matches(self, properties: dict[str, Any]) -> bool:
        """Whether an event with `properties` passes this filter (text compared
        case-insensitively)."""
        actual = properties.get(self.property)
        if self.op == "exists":
            return (actual is not None) == (self.value is not False)
        if actual is None:
            return self.op == "ne"
        if self.op == "contains":
            return str(self.value).casefold() in str(actual).casefold()
        same = _comparable(actual) == _comparable(self.value)
        return same if self.op == "eq" else not same


def _comparable(value: object) -> object:
    return value.casefold() if isinstance(value, str) else value


class OnEvent(_Model):
    """Start when the lead does something: an event type, optionally filtered."""

    kind: Literal["event"] = "event"
    type: DeclaredEventType  # a built-in or declared custom type (journeys/event_types.py)
    where: tuple[EventFilter, ...] = ()


class OnSegmentEntry(_Model):
    """Start when the lead enters a segment (each entry is a cause of its own)."""

    kind: Literal["segment_entry"] = "segment_entry"
    segment: str = Field(pattern=r"^[a-z0-9-]{1,64}$")


class OnStage(_Model):
    """Start when the lead's lifecycle stage becomes `stage` (e.g. an internal alert on MQL)."""

    kind: Literal["stage"] = "stage"
    stage: LifecycleStage


class OnDate(_Model):
    """Start on a date in the lead's properties, at a local hour in the lead's timezone:
    `every_year` (a birthday, an anniversary: the month and day each year; 29 February is
    28 February in other years) or once; `offset` moves it (`-30 days`: a month before a
    `renewal_date`). A lead whose date is missing or unreadable never fires."""

    kind: Literal["date"] = "date"
    property: str = Field(pattern=r"^[a-z0-9_]{1,64}$")
    every_year: bool = False
    offset: timedelta = timedelta(0)
    at_hour: int = Field(default=9, ge=0, le=23)


class OnSchedule(_Model):
    """Enroll the members of `segment` on a schedule (a Temporal Schedule): `cron` in five
    fields, read in `timezone` — "every Monday 09:00 Europe/Berlin" is
    `on_schedule("0 9 * * MON", "Europe/Berlin", segment="hot-mqls")`. Each run enrolls
    each member once; the journey's re-entry policy decides about leads already in it."""

    kind: Literal["schedule"] = "schedule"
    cron: str = Field(pattern=r"^\S+( \S+){4}$")
    timezone: str = "UTC"
    segment: str = Field(pattern=r"^[a-z0-9-]{1,64}$")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ValueError, ZoneInfoNotFoundError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value


class OnForm(_Model):
    """Start when a website form is submitted (`journeys/forms.py`): the submission's API
    call enrolls the lead and answers with the enrollment, so this trigger is fired there,
    synchronously, and recorded like the others (once per submission id)."""

    kind: Literal["form"] = "form"
    form: str = Field(pattern=r"^[a-z0-9-]{1,64}$")


AnyTrigger = OnEvent | OnSegmentEntry | OnStage | OnDate | OnSchedule | OnForm
Trigger = Annotated[AnyTrigger, Field(discriminator="kind")]


def on_event(type: str, *where: EventFilter) -> OnEvent:
    """A trigger on an event type, e.g. `on_event("trial_started")`."""
    return OnEvent.model_validate({"type": type, "where": where})


def on_segment_entry(segment: str) -> OnSegmentEntry:
    """A trigger on entering a segment, e.g. `on_segment_entry("pricing-visitors")`."""
    return OnSegmentEntry(segment=segment)


def on_stage(stage: LifecycleStage) -> OnStage:
    """A trigger on a lifecycle stage, e.g. `on_stage(LifecycleStage.MQL)`."""
    return OnStage(stage=stage)


def where(
    property: str, op: Literal["eq", "ne", "contains", "exists"], value: object
) -> EventFilter:
    """An event filter, e.g. `where("url", "contains", "/pricing")`."""
    return EventFilter.model_validate({"property": property, "op": op, "value": value})


def on_date(
    property: str, *, every_year: bool = False, offset: timedelta = timedelta(0), at_hour: int = 9
) -> OnDate:
    """A trigger on a date property, e.g. `on_date("birthday", every_year=True)` or
    `on_date("renewal_date", offset=-timedelta(days=30))`."""
    return OnDate(property=property, every_year=every_year, offset=offset, at_hour=at_hour)


def on_schedule(cron: str, timezone: str = "UTC", *, segment: str) -> OnSchedule:
    """A scheduled enrollment of a segment's members, e.g.
    `on_schedule("0 9 * * MON", "Europe/Berlin", segment="hot-mqls")`."""
    return OnSchedule(cron=cron, timezone=timezone, segment=segment)


def on_form(form: str) -> OnForm:
    """A trigger on a form's submission, e.g. `on_form("whitepaper-download")`."""
    return OnForm(form=form)


def label(trigger: AnyTrigger) -> str:
    """How a trigger is named in timelines and firings: `event:trial_started`,
    `segment_entry:pricing-visitors`, `stage:mql`."""
    match trigger:
        case OnEvent(type=kind):
            return f"event:{kind.value if hasattr(kind, 'value') else kind}"
        case OnSegmentEntry(segment=segment):
            return f"segment_entry:{segment}"
        case OnStage(stage=stage):
            return f"stage:{stage.value}"
        case OnDate(property=name):
            return f"date:{name}"
        case OnSchedule(segment=segment):
            return f"schedule:{segment}"
        case OnForm(form=form):
            return f"form:{form}"


class HappenedEvent(_Model):
    """An event of the lead, as the trigger rules see it."""

    event_id: str
    type: str
    occurred_at: datetime
    properties: dict[str, Any] = {}


class SegmentEntry(_Model):
    """The lead entered `segment` at `at` (its entry time names the cause)."""

    segment: str
    at: datetime


class StageReached(_Model):
    """The lead's stage became `stage`; `key` names this occurrence (e.g. the MQL cycle)."""

    stage: LifecycleStage
    key: str


class Firing(_Model):
    """A trigger of `journey` that fires for `cause_key`."""

    journey: str
    trigger: str
    cause_key: str


def firings(
    triggers: Mapping[str, tuple[AnyTrigger, ...]],
    *,
    events: tuple[HappenedEvent, ...] = (),
    entries: tuple[SegmentEntry, ...] = (),
    stages: tuple[StageReached, ...] = (),
    dates: LeadDates | None = None,
) -> list[Firing]:
    """Every (journey, cause) that fires for what happened, in a stable order; with
    `dates`, the date triggers whose moment has come (within `DATE_GRACE` of it)."""
    found: list[Firing] = []
    for journey, declared in sorted(triggers.items()):
        for trigger in declared:
            if isinstance(trigger, OnSchedule | OnForm):
                continue  # fired by a Temporal Schedule, or by the form submission itself
            if isinstance(trigger, OnDate):
                found += _date_firings(journey, trigger, dates)
            else:
                found += _matches(journey, trigger, events, entries, stages)
    return found


def _matches(
    journey: str,
    trigger: OnEvent | OnSegmentEntry | OnStage,
    events: tuple[HappenedEvent, ...],
    entries: tuple[SegmentEntry, ...],
    stages: tuple[StageReached, ...],
) -> list[Firing]:
    name = label(trigger)
    match trigger:
        case OnEvent():
            return [
                Firing(journey=journey, trigger=name, cause_key=f"event:{e.event_id}")
                for e in events
                if e.type == trigger.type and all(f.matches(e.properties) for f in trigger.where)
            ]
        case OnSegmentEntry():
            return [
                Firing(
                    journey=journey,
                    trigger=name,
                    cause_key=f"segment:{e.segment}:{e.at.isoformat()}",
                )
                for e in entries
                if e.segment == trigger.segment
            ]
        case OnStage():
            return [
                Firing(journey=journey, trigger=name, cause_key=f"stage:{s.key}")
                for s in stages
                if s.stage == trigger.stage
            ]


# A date trigger fires when its moment has come, but not for a moment long past: a lead
# imported with last month's renewal date gets no reminder for it.
DATE_GRACE = timedelta(days=1)
# A one-off date further ahead than this sets no timer (a lead workflow would sleep for
# centuries on a typo such as 9999-12-31); it is seen again when the lead next changes.
HORIZON = timedelta(days=5 * 366)


class LeadDates(_Model):
    """What date triggers read: the lead's properties, its zone and the time now."""

    properties: dict[str, Any]
    zone: str = "UTC"
    now: datetime


def occurrences(trigger: OnDate, dates: LeadDates) -> tuple[datetime | None, datetime | None]:
    """The latest moment of `trigger` at or before now, and the next one after now (None
    where there is none: no readable date, or a one-off that has passed)."""
    day = _date_of(dates.properties.get(trigger.property))
    if day is None:
        return None, None
    zone = ZoneInfo(dates.zone)
    if not trigger.every_year:
        moment = _at(day, trigger, zone)
        if moment is None or moment > dates.now + HORIZON:
            return None, None
        return (moment, None) if moment <= dates.now else (None, moment)
    year = dates.now.astimezone(zone).year
    moments = [_at(_in_year(day, y), trigger, zone) for y in (year - 1, year, year + 1, year + 2)]
    candidates = [m for m in moments if m is not None]
    past = [c for c in candidates if c <= dates.now]
    future = [c for c in candidates if c > dates.now]
    return (max(past) if past else None), (min(future) if future else None)


def next_date_moment(
    triggers: Mapping[str, tuple[AnyTrigger, ...]], dates: LeadDates
) -> datetime | None:
    """The earliest moment after now that any date trigger will fire for this lead."""
    moments = [
        occurrences(t, dates)[1]
        for declared in triggers.values()
        for t in declared
        if isinstance(t, OnDate)
    ]
    return min((m for m in moments if m is not None), default=None)


def _date_firings(journey: str, trigger: OnDate, dates: LeadDates | None) -> list[Firing]:
    if dates is None:
        return []
    moment, _ = occurrences(trigger, dates)
    if moment is None or dates.now - moment > DATE_GRACE:
        return []
    return [
        Firing(
            journey=journey,
            trigger=label(trigger),
            # The local date: the same occasion whatever zone the lead is judged in.
            cause_key=f"date:{trigger.property}:{_local_day(moment, dates.zone)}",
        )
    ]


def _local_day(moment: datetime, zone: str) -> str:
    return moment.astimezone(ZoneInfo(zone)).date().isoformat()


def _date_of(raw: object) -> date | None:
    if isinstance(raw, datetime):
        return raw.date()
    if isinstance(raw, date):
        return raw
    if isinstance(raw, str):
        try:
            return date.fromisoformat(raw[:10])
        except ValueError:
            return None
    return None


def _in_year(day: date, year: int) -> date:
    try:
        return day.replace(year=year)
    except ValueError:  # 29 February in a common year
        return date(year, 2, 28)


def _at(day: date, trigger: OnDate, zone: ZoneInfo) -> datetime | None:
    """The moment in UTC; None for a date at the calendar's edge (year 1 or 9999), which
    can't be a real occasion and must not stall the lead's workflow."""
    try:
        local = datetime.combine(day, time(trigger.at_hour), tzinfo=zone) + trigger.offset
        return local.astimezone(UTC)
    except (OverflowError, ValueError):
        return None
