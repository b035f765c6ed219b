"""Routing rules as code: who in sales gets an MQL or a qualified account.

The account's owner if it has one, else a territory (country) rule, else an industry rule,
else round-robin among the reps. Pure: the activity supplies the round-robin position.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class SalesRep(BaseModel):
    """A sales rep leads can be routed to."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(pattern=r"^[a-z0-9_-]{1,64}$")
    name: str
    email: str


class RoutingRules(BaseModel):
    """The sales team and how leads are shared out among it."""

    model_config = ConfigDict(frozen=True)

    reps: tuple[SalesRep, ...] = Field(min_length=1)
    by_country: dict[str, str] = Field(default_factory=dict)
    by_industry: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _rules_name_known_reps(self) -> RoutingRules:
        known = {r.id for r in self.reps}
        for kind, table in (("country", self.by_country), ("industry", self.by_industry)):
            for key, rep in table.items():
                if rep not in known:
                    raise ValueError(f"{kind} rule {key!r} names unknown rep {rep!r}")
        return self

    def rep(self, rep_id: str) -> SalesRep | None:
        """The rep with this id, if it is on the team."""
        return next((r for r in self.reps if r.id == rep_id), None)


class RoutingDecision(BaseModel):
    """Who gets the lead, and which rule said so."""

    model_config = ConfigDict(frozen=True)

    rep_id: str
    rule: Literal["account owner", "territory", "industry", "round robin"]


def route_lead(
    rules: RoutingRules,
    *,
    account_owner: str | None,
    country: str | None,
    industry: str | None,
    round_robin_position: int,
    exclude: str | None = None,
) -> RoutingDecision:
    """Pick the rep for a lead. `exclude` (a rep who let the SLA lapse) is passed over
    by every rule; round-robin then takes the next rep after them."""

    def usable(rep_id: str | None) -> bool:
        return rep_id is not None and rep_id != exclude and rules.rep(rep_id) is not None

    if usable(account_owner):
        assert account_owner is not None
        return RoutingDecision(rep_id=account_owner, rule="account owner")
    territory = rules.by_country.get((country or "").upper())
    if usable(territory):
        assert territory is not None
        return RoutingDecision(rep_id=territory, rule="territory")
    by_industry = rules.by_industry.get((industry or "").casefold())
    if usable(by_industry):
        assert by_industry is not None
        return RoutingDecision(rep_id=by_industry, rule="industry")
    candidates = [r for r in rules.reps if r.id != exclude] or list(rules.reps)
    chosen = candidates[round_robin_position % len(candidates)]
    return RoutingDecision(rep_id=chosen.id, rule="round robin")
