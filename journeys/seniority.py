"""How senior a job title is: one vocabulary for branch conditions (`seniority eq "vp"`)
and the scoring models' fit rules."""

from __future__ import annotations

import re
from enum import StrEnum


class Seniority(StrEnum):
    """Levels, most senior first."""

    C_LEVEL = "c_level"
    VP = "vp"
    DIRECTOR = "director"
    MANAGER = "manager"
    STUDENT = "student"


# Whole words (or phrases) of a title that place it at a level; the first level that
# matches wins, so "VP and Head of Sales" is `vp` and "Chief of Staff" is `c_level`.
SENIORITY_WORDS: dict[Seniority, tuple[str, ...]] = {
    Seniority.C_LEVEL: ("chief", "ceo", "cmo", "cto", "coo", "founder"),
    Seniority.VP: ("vp", "vice president", "head of"),
    Seniority.DIRECTOR: ("director",),
    Seniority.MANAGER: ("manager", "lead"),
    Seniority.STUDENT: ("student", "intern"),
}


def seniority_of(title: str | None) -> Seniority | None:
    """The level `title` names, or None (no title, or none of the words)."""
    if not title:
        return None
    text = title.casefold()
    for level, words in SENIORITY_WORDS.items():
        if any(re.search(rf"\b{re.escape(word)}\b", text) for word in words):
            return level
    return None
