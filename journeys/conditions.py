"""Branch conditions evaluated against a lead's facts (pure; used by the branch activity)."""

from __future__ import annotations

from typing import Any

from journeys.dsl import Branch, BranchCase, Condition


def attribute_value(facts: dict[str, Any], attribute: str) -> Any:
    """The value of `attribute` (`property:<name>` reads a custom property)."""
    if attribute.startswith("property:"):
        return (facts.get("properties") or {}).get(attribute.removeprefix("property:"))
    return facts.get(attribute)


def _normalise(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


def holds(condition: Condition, facts: dict[str, Any]) -> bool:
    """Whether `condition` holds for a lead with `facts`. Unknown values never match,
    except for `ne` and `exists`."""
    actual = _normalise(attribute_value(facts, condition.attribute))
    expected = condition.value
    if condition.op == "exists":
        return (actual is not None) == (expected is not False)
    if actual is None:
        return condition.op == "ne"
    if condition.op == "in":
        options = expected if isinstance(expected, tuple) else (expected,)
        return actual in {_normalise(o) for o in options}
    if condition.op == "contains":
        return isinstance(actual, str) and str(_normalise(expected)) in actual
    expected = _normalise(expected)
    try:
        match condition.op:
            case "eq":
                return bool(actual == expected)
            case "ne":
                return bool(actual != expected)
            case "gt":
                return bool(actual > expected)
            case "gte":
                return bool(actual >= expected)
            case "lt":
                return bool(actual < expected)
            case "lte":
                return bool(actual <= expected)
    except TypeError:  # comparing a string with a number: the condition doesn't hold
        return False
    return False


def first_holding(cases: tuple[BranchCase, ...], facts: dict[str, Any]) -> str | None:
    """The `next` of the first case (a branch's, or a wait's condition outcome) whose
    conditions all hold, or None."""
    for case in cases:
        if all(holds(condition, facts) for condition in case.when):
            return case.next
    return None


def choose_branch(branch: Branch, facts: dict[str, Any]) -> str:
    """The step a branch leads to for a lead with `facts`: its first holding case, else
    its default."""
    chosen = first_holding(branch.cases, facts)
    if chosen is not None:
        return chosen
    assert branch.default is not None, "validated journeys have a default"
    return branch.default
