"""The error every definition-as-code raises when it is wrong: all its problems at once."""

from __future__ import annotations


class DefinitionProblems(ValueError):
    """A definition (a journey, a segment) has problems; `problems` lists each, and the
    message names them all, so an engineer fixes it in one pass."""

    def __init__(self, kind: str, name: str, problems: list[str]) -> None:
        self.name = name
        self.problems = problems
        super().__init__(
            f"{kind} {name!r} has {len(problems)} problem(s):\n"
            + "\n".join(f"  - {p}" for p in problems)
        )
