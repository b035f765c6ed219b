"""Which subject won a broadcast's A/B test, and whether the difference means anything:
a two-proportion z-test (pooled), two-sided. Pure."""

from __future__ import annotations

import math
from dataclasses import dataclass

# The conventional threshold: below it, chance alone would rarely produce such a gap.
SIGNIFICANCE_LEVEL = 0.05


@dataclass(frozen=True)
class VariantResult:
    """One variant's sample: how many got it, how many opened (or clicked)."""

    variant: int
    recipients: int
    engaged: int

    @property
    def rate(self) -> float:
        return self.engaged / self.recipients if self.recipients else 0.0


@dataclass(frozen=True)
class AbOutcome:
    """The winner, its lead over the runner-up, and the test's verdict."""

    winner: int
    runner_up: int
    winner_rate: float
    runner_up_rate: float
    z: float
    p_value: float

    @property
    def significant(self) -> bool:
        return self.p_value < SIGNIFICANCE_LEVEL

    @property
    def lift(self) -> float:
        """Percentage points the winner is ahead by."""
        return (self.winner_rate - self.runner_up_rate) * 100

    def verdict(self, labels: list[str]) -> str:
        """A sentence a marketer can read."""
        head = (
            f"{labels[self.winner]!r} won with {self.winner_rate:.1%} against "
            f"{labels[self.runner_up]!r} with {self.runner_up_rate:.1%} "
            f"({self.lift:+.1f} points, p = {self.p_value:.3f})"
        )
        if self.significant:
            return f"{head}: significant at the 5 % level."
        return (
            f"{head}: not significant — the difference may be chance; "
            f"{labels[self.winner]!r} was sent to the rest anyway."
        )


def two_proportion_p_value(a: VariantResult, b: VariantResult) -> tuple[float, float]:
    """(z, two-sided p) for the difference of the two rates; (0, 1) when undefined."""
    if not a.recipients or not b.recipients:
        return 0.0, 1.0
    pooled = (a.engaged + b.engaged) / (a.recipients + b.recipients)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / a.recipients + 1 / b.recipients))
    if spread == 0:
        return 0.0, 1.0
    z = (a.rate - b.rate) / spread
    return z, math.erfc(abs(z) / math.sqrt(2))


def pick_winner(results: list[VariantResult]) -> AbOutcome:
    """The variant with the highest rate (ties: the first), tested against the runner-up."""
    if len(results) < 2:
        raise ValueError("an A/B test needs at least two variants")
    ranked = sorted(results, key=lambda r: (-r.rate, r.variant))
    best, second = ranked[0], ranked[1]
    z, p = two_proportion_p_value(best, second)
    return AbOutcome(best.variant, second.variant, best.rate, second.rate, z, p)
