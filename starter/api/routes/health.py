"""`GET /healthz`: the process answers (for load balancers and the demo's start-up wait)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["operations"], include_in_schema=False)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Always `{"status": "ok"}` while the process serves requests."""
    return {"status": "ok"}
