"""A/B variant assignment: deterministic per (lead, step), weighted, stable across replays."""

from __future__ import annotations

import hashlib

from journeys.dsl import Variant


def choose_variant(lead_id: str, step_id: str, variants: tuple[Variant, ...]) -> Variant:
    """The variant this lead gets at this step: the same on every call, for every worker."""
    digest = hashlib.sha256(f"{lead_id}:{step_id}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") % sum(v.weight for v in variants)
    for variant in variants:
        if point < variant.weight:
            return variant
        point -= variant.weight
    raise AssertionError("unreachable: point < total weight")
