"""Finds every journey module in `journeys.catalog` and the definition it builds."""

from __future__ import annotations

from functools import cache

import journeys.catalog
from journeys.catalog_modules import exposed
from journeys.dsl import JourneyDefinition
from journeys.triggers import AnyTrigger, OnForm

JourneyTriggers = tuple[AnyTrigger, ...]


class UnknownJourneyError(LookupError):
    """No registered journey has this name."""


@cache
def all_journeys() -> dict[str, JourneyDefinition]:
    """Every registered journey by name; a journey module exposes `JOURNEY`."""
    found: dict[str, JourneyDefinition] = {}
    for _, definition in exposed(journeys.catalog, "JOURNEY"):
        if isinstance(definition, JourneyDefinition):
            if definition.name in found:
                raise ValueError(f"two journey modules define {definition.name!r}")
            found[definition.name] = definition
    return found


def get_journey(name: str) -> JourneyDefinition:
    """The registered journey called `name`."""
    try:
        return all_journeys()[name]
    except KeyError:
        raise UnknownJourneyError(name) from None


@cache
def all_triggers() -> dict[str, JourneyTriggers]:
    """Every journey's triggers by journey name (a journey module may expose `TRIGGERS`
    next to its `JOURNEY`); journeys without any are left out."""
    found: dict[str, JourneyTriggers] = {}
    for module, definition in exposed(journeys.catalog, "JOURNEY"):
        triggers = tuple(getattr(module, "TRIGGERS", ()))
        if isinstance(definition, JourneyDefinition) and triggers:
            found[definition.name] = triggers
    return found


def journey_of_form(form: str) -> str | None:
    """The journey whose `on_form` trigger names `form` (None: none does)."""
    for journey, triggers in sorted(all_triggers().items()):
        if any(isinstance(t, OnForm) and t.form == form for t in triggers):
            return journey
    return None
