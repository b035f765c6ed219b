"""Every event type Nurture accepts, declared in one registry: the built-in engagement
types (`journeys.dsl.EventType`) and custom ones (`trial_started`, `renewal_due`, …), each
with a pydantic model of its properties. `POST /v1/events` accepts exactly these.

Custom types are declared as code in `journeys/events/catalog.py` with `declare_event_type`
(docs/events-draft.md). Journeys may wait for them, exit on them and scoring rules may award
points for them; a declared name is validated wherever an event type is named.

A declaration is forever, like a member of `EventType`: running journeys' snapshots and
workflow histories name event types, and must still validate when they are replayed.
Deprecate a type in its description instead of deleting or renaming it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic_core import PydanticCustomError

from journeys.dsl import EventType
from journeys.events.builtin import BUILT_IN_PROPERTIES, BuiltInProperties
from journeys.events.names import EVENT_TYPE_NAME_PATTERN, CustomEventType

AnyProperties = BuiltInProperties


class EventTypeSpec(BaseModel):
    """A declared event type: its name, what it means, and its properties' model."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    name: str
    description: str = ""
    properties: type[BaseModel] = AnyProperties
    built_in: bool = False


class EventTypeClash(ValueError):
    """A declaration reuses the name of a built-in or already declared event type."""


EVENT_TYPES: dict[str, EventTypeSpec] = {
    kind.value: EventTypeSpec(
        name=kind.value,
        description=(BUILT_IN_PROPERTIES.get(kind, AnyProperties).__doc__ or "").strip(),
        properties=BUILT_IN_PROPERTIES.get(kind, AnyProperties),
        built_in=True,
    )
    for kind in EventType
}
_BUILT_IN = frozenset(kind.value for kind in EventType)


def declare_event_type(
    name: str, properties_model: type[BaseModel], description: str = ""
) -> EventTypeSpec:
    """Declare a custom event type `name` whose properties `properties_model` validates.

    Refuses a name that is not lower_snake_case (at most 40 characters) and one that is
    already taken, by a built-in type or an earlier declaration.
    """
    if not re.fullmatch(EVENT_TYPE_NAME_PATTERN, name):
        raise ValueError(
            f"event type name {name!r} must be lower_snake_case, starting with a letter, "
            "at most 40 characters"
        )
    if not (isinstance(properties_model, type) and issubclass(properties_model, BaseModel)):
        raise TypeError(f"the properties of {name!r} must be a pydantic model class")
    if name in EVENT_TYPES:
        taken_by = "a built-in event type" if EVENT_TYPES[name].built_in else "already declared"
        raise EventTypeClash(f"event type {name!r} is {taken_by}")
    spec = EventTypeSpec(name=name, description=description, properties=properties_model)
    EVENT_TYPES[name] = spec
    return spec


def declared_event_types() -> tuple[str, ...]:
    """The names of every declared event type, sorted."""
    return tuple(sorted(EVENT_TYPES))


def is_declared(name: str) -> bool:
    """Whether `name` is a declared event type (built-in or custom)."""
    return name in EVENT_TYPES


def event_type_named(name: str) -> EventType | CustomEventType:
    """The declared event type called `name`: the `EventType` member for a built-in one,
    a `CustomEventType` for a custom one. Any other name is a validation error listing the
    declared types."""
    if name in _BUILT_IN:
        return EventType(name)
    if name in EVENT_TYPES:
        return CustomEventType(name)
    shown = repr(name) if len(name) <= 60 else repr(name[:60]) + "…"
    declared = ", ".join(declared_event_types())
    # The message is built here, not templated by pydantic: the name is the client's text.
    raise PydanticCustomError(
        "event_type_undeclared",
        f"{shown} is not a declared event type; the declared types are: {declared}",
    )


def validate_properties(name: str, properties: Mapping[str, Any]) -> dict[str, Any]:
    """An event's `properties` validated with its type's model, as JSON-compatible values
    (dates as ISO strings). Raises `pydantic.ValidationError` whose locations name the
    properties, `KeyError` for an undeclared type."""
    validated = EVENT_TYPES[name].properties.model_validate(dict(properties))
    return validated.model_dump(mode="json", exclude_unset=True)


# The custom types register themselves with `declare_event_type` when their module loads;
# it needs the functions above, so it is imported last.
from journeys.events import catalog as _catalog  # noqa: E402, F401
