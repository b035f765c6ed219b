"""Path and header parameters several routes share, validated the same way everywhere."""

from __future__ import annotations

from typing import Annotated

from fastapi import Header, Path

LeadId = Annotated[str, Path(pattern=r"^[0-9a-f-]{36}$", description="The lead's id (a UUID)")]
IdempotencyKey = Annotated[
    str | None,
    Header(max_length=200, pattern=r"^[\x21-\x7e]+$", description="Makes retries safe"),
]
