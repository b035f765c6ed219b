"""Buyer personas: who a journey is written for, with a sample lead for simulations.

Scoring models per persona arrive with the scoring issue; the sample leads here are what
`nurture simulate --persona NAME` enrolls.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Persona:
    """A kind of buyer and a typical lead of that kind."""

    name: str
    description: str
    sample_lead: dict[str, Any] = field(default_factory=dict)


PERSONAS = {
    p.name: p
    for p in (
        Persona(
            "decision-maker",
            "Head of a department at a mid-sized company; signs the contract.",
            {
                "first_name": "Dana",
                "last_name": "Decider",
                "title": "VP Marketing",
                "company": "Midsize Manufacturing",
                "company_size": 800,
                "industry": "manufacturing",
                "country": "DE",
                "timezone": "Europe/Berlin",
            },
        ),
        Persona(
            "practitioner",
            "Hands-on user at a small company; evaluates the product, influences the decision.",
            {
                "first_name": "Pat",
                "last_name": "Practitioner",
                "title": "Marketing Operations Manager",
                "company": "Small SaaS",
                "company_size": 40,
                "industry": "software",
                "country": "US",
                "timezone": "America/New_York",
            },
        ),
        Persona(
            "student",
            "Researching the topic; not a buyer.",
            {
                "first_name": "Sam",
                "last_name": "Student",
                "title": "Student",
                "company": "University",
                "company_size": 1,
                "industry": "education",
                "country": "GB",
                "timezone": "Europe/London",
            },
        ),
    )
}
