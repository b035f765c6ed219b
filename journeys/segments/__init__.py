"""The segments Nurture ships: one module each, exposing `SEGMENT` (a SegmentDefinition
built with `journeys.segment_validation.define_segment`), and the registry that finds them.

Add a module here and the registry finds it; `tests/test_segment_validation.py` checks it.
"""

from __future__ import annotations

import sys
from collections.abc import Collection
from functools import cache

from journeys.catalog_modules import exposed
from journeys.segment_dsl import SegmentDefinition
from journeys.segment_validation import segment_problems


class UnknownSegmentError(LookupError):
    """No registered segment has this name."""


@cache
def all_segments() -> dict[str, SegmentDefinition]:
    """Every registered segment by name; a segment module exposes `SEGMENT`."""
    found: dict[str, SegmentDefinition] = {}
    for _, definition in exposed(sys.modules[__name__], "SEGMENT"):
        if isinstance(definition, SegmentDefinition):
            if definition.name in found:
                raise ValueError(f"two segment modules define {definition.name!r}")
            found[definition.name] = definition
    return found


def get_segment(name: str) -> SegmentDefinition:
    """The registered segment called `name`."""
    try:
        return all_segments()[name]
    except KeyError:
        raise UnknownSegmentError(name) from None


def registry_problems(journey_names: Collection[str] | None = None) -> list[str]:
    """Every shipped segment's problems against the complete registries — above all the
    journeys its `in_journey` conditions name (default: `journeys.registry.all_journeys()`),
    which a segment module cannot check at import (see `journeys.segment_validation`)."""
    if journey_names is None:
        from journeys.registry import all_journeys  # lazily: the catalog may import segments

        journey_names = set(all_journeys())
    return [
        f"segment {name!r}: {problem}"
        for name, definition in sorted(all_segments().items())
        for problem in segment_problems(definition, journey_names=journey_names)
    ]
