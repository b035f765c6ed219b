"""Whole-segment validation: shapes, values and registry references, all in one error.

Segment modules build their definition with `define_segment(...)`, so a segment is checked
when it is defined (at import), like a journey (`journeys.validation.define_journey`).

Journey names are the one check *not* made at import by default: journey modules may come
to refer to segments (triggers) while segments refer to journeys (`in_journey`), and a
segment module asking `journeys.registry.all_journeys()` while the journey catalog is being
imported would see half a catalog. So `define_segment` checks journey names only when given
`journey_names`; `journeys.segments.registry_problems()` checks every shipped segment
against the complete journey registry (`tests/test_segment_validation.py` calls it).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from pydantic import TypeAdapter, ValidationError

from journeys.event_types import declared_event_types
from journeys.problems import DefinitionProblems
from journeys.segment_dsl import (
    DEFER_SEGMENT_CHECK,
    AnyCondition,
    EventCount,
    InJourney,
    NoEvents,
    SegmentCondition,
    SegmentDefinition,
    condition_problems,
    walk,
)

_CONDITION: TypeAdapter[AnyCondition] = TypeAdapter(SegmentCondition)


class SegmentValidationError(DefinitionProblems):
    """A segment has problems; `problems` lists each, and the message names them all."""

    def __init__(self, segment: str, problems: list[str]) -> None:
        self.segment = segment
        super().__init__("segment", segment, problems)


def reference_problems(
    condition: AnyCondition,
    *,
    event_types: Collection[str] | None = None,
    journey_names: Collection[str] | None = None,
    loc: str = "condition",
) -> list[str]:
    """Event types not declared (default: `declared_event_types()`) and, when
    `journey_names` is given, journeys not among them."""
    known_types = set(declared_event_types() if event_types is None else event_types)
    problems = []
    for where, node in walk(condition, loc):
        match node:
            case EventCount():
                if node.type and node.type not in known_types:
                    problems.append(f"{where}.type: unknown event type {node.type!r}")
            case NoEvents():
                for index, name in enumerate(node.types):
                    if name not in known_types:
                        problems.append(f"{where}.types.{index}: unknown event type {name!r}")
            case InJourney():
                if journey_names is not None and node.journey not in journey_names:
                    problems.append(f"{where}.journey: unknown journey {node.journey!r}")
            case _:
                pass
    return problems


def segment_problems(
    definition: SegmentDefinition,
    *,
    event_types: Collection[str] | None = None,
    journey_names: Collection[str] | None = None,
) -> list[str]:
    """The values' problems and the references', in one list."""
    problems = condition_problems(definition.condition)
    problems += reference_problems(
        definition.condition, event_types=event_types, journey_names=journey_names
    )
    return list(dict.fromkeys(problems))


def _pydantic_problems(exc: ValidationError) -> list[str]:
    return [f"{'.'.join(str(p) for p in e['loc']) or 'segment'}: {e['msg']}" for e in exc.errors()]


def define_segment(
    name: str,
    description: str,
    condition: AnyCondition | Mapping[str, Any],
    *,
    event_types: Collection[str] | None = None,
    journey_names: Collection[str] | None = None,
) -> SegmentDefinition:
    """Build and fully validate a segment; raises SegmentValidationError listing every
    problem. `condition` is built with the helpers of `journeys.segment_dsl` or given as
    data (`{"kind": "events", ...}`, e.g. from a file). Event types are checked against
    `event_types` (default: the declared ones), journeys only when `journey_names` is given
    (see the module docstring)."""
    data = condition  # a model is taken as it is, data is validated
    problems: list[str] = []
    definition: SegmentDefinition | None = None
    try:
        definition = SegmentDefinition.model_validate(
            {"name": name, "description": description, "condition": data},
            context={DEFER_SEGMENT_CHECK: True},
        )
        tree: AnyCondition | None = definition.condition
    except ValidationError as exc:
        problems += _pydantic_problems(exc)
        # A bad name must not hide the condition's problems: check the condition alone.
        try:
            tree = _CONDITION.validate_python(data)
        except ValidationError:
            tree = None
    if tree is not None:
        problems += condition_problems(tree)
        problems += reference_problems(tree, event_types=event_types, journey_names=journey_names)
    problems = list(dict.fromkeys(problems))
    if problems or definition is None:
        raise SegmentValidationError(name, problems)
    return definition
