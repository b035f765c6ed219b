"""Running the benchmarks' many calls a bounded number at a time."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any


async def in_parallel(calls: list[Callable[..., Awaitable[Any]]], width: int) -> None:
    """Await every call, at most `width` of them at once."""
    gate = asyncio.Semaphore(width)

    async def run(call: Callable[..., Awaitable[Any]]) -> None:
        async with gate:
            await call()

    await asyncio.gather(*(run(c) for c in calls))
