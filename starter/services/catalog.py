"""The deployed journeys, looked up by name for a request."""

from __future__ import annotations

from journeys.dsl import JourneyDefinition
from journeys.registry import UnknownJourneyError, all_journeys, get_journey
from starter.services.errors import Refusal, UnknownJourney


def journey_named(
    name: str, loc: tuple[str, ...], refusal: Refusal = Refusal.INVALID
) -> JourneyDefinition:
    """The deployed journey `name`; `UnknownJourney` (listing the known ones) at `loc`
    otherwise: invalid in a body or query, not found in a path."""
    try:
        return get_journey(name)
    except UnknownJourneyError:
        raise UnknownJourney(name, sorted(all_journeys()), loc, refusal) from None
