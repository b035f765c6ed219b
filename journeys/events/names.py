"""An event type's name as models hold it once validated: a member of `EventType` for the
built-in types, a `CustomEventType` for the declared custom ones. Both are `str`s with a
`.value`, so code reads either the same way, and both serialise as the plain name.

`DECLARED_EVENT_TYPE` is the pydantic schema of such a name (`journeys.dsl.DeclaredEventType`
annotates fields with it): any declared name is accepted, anything else is refused with the
declared names in the message. The registry is looked up when a value is validated, not
when this module loads (the registry imports `journeys.dsl`, which imports this module).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

if TYPE_CHECKING:
    from journeys.dsl import EventType

# A declared name: lower-case words joined by underscores, short enough for a trigger.
EVENT_TYPE_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"


class CustomEventType(str):
    """The name of a declared custom event type, e.g. `trial_started`. Like a member of
    `EventType`, its `.value` is the name itself."""

    __slots__ = ()

    @property
    def value(self) -> str:
        """The name (as `EventType.X.value` is)."""
        return str.__str__(self)

    def __repr__(self) -> str:
        return f"CustomEventType({str.__repr__(self)})"


def _declared(name: str) -> EventType | CustomEventType:
    from journeys.event_types import event_type_named  # the registry imports the DSL

    return event_type_named(name)


class _DeclaredEventTypeSchema:
    """Pydantic schema of a declared event type's name (see the module docstring)."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_after_validator_function(
            _declared,
            core_schema.str_schema(),
            serialization=core_schema.plain_serializer_function_ser_schema(
                str.__str__, when_used="json"
            ),
        )

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        from journeys.event_types import declared_event_types

        return {
            "type": "string",
            "enum": list(declared_event_types()),
            "description": "A declared event type (built-in or custom, see journeys/events).",
        }


DECLARED_EVENT_TYPE = _DeclaredEventTypeSchema()
