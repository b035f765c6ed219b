"""The journeys Nurture ships: one module each, exposing `JOURNEY` (a JourneyDefinition).

Add a module here and the registry finds it; `tests/test_journey_catalog.py` validates it.
"""
