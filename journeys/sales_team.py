"""The sales team and its routing rules, as code (edit for your team)."""

from __future__ import annotations

from journeys.routing import RoutingRules, SalesRep

SALES_TEAM = RoutingRules(
    reps=(
        SalesRep(id="alex", name="Alex Morgan", email="alex@sales.nurture.example"),
        SalesRep(id="sam", name="Sam Okafor", email="sam@sales.nurture.example"),
        SalesRep(id="kim", name="Kim Berger", email="kim@sales.nurture.example"),
    ),
    # Territories: DACH goes to Kim.
    by_country={"DE": "kim", "AT": "kim", "CH": "kim"},
    # Industries with a specialist.
    by_industry={"manufacturing": "alex"},
)
