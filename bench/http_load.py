"""An open-loop HTTP load generator light enough not to be the bottleneck.

httpx queues requests beyond its pool in a list it scans for every request: with a
backlog of thousands (an open loop against a slow server) the generator itself spent the
run in that scan and offered 33 requests/s where 300 were asked. Here a fixed number of
keep-alive HTTP/1.1 connections take requests from one queue; each request's latency is
measured from the moment it was *scheduled*, so time spent waiting for a free connection
counts (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class LoadResult:
    """What an open-loop run measured."""

    sent: int = 0
    failed: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    offered_for: float = 0.0
    answered_for: float = 0.0


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> int:
    writer.write(request)
    await writer.drain()
    status_line = await reader.readuntil(b"\r\n")
    status = int(status_line.split(b" ", 2)[1])
    length = 0
    while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if length:
        await reader.readexactly(length)
    return status


def request_bytes(
    method: str, host: str, path: str, headers: dict[str, str], body: Any = None
) -> bytes:
    """An HTTP/1.1 request (a JSON body when `body` is given)."""
    payload = b"" if body is None else json.dumps(body).encode()
    lines = [
        f"{method} {path} HTTP/1.1",
        f"Host: {host}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


async def open_loop(
    host: str,
    port: int,
    rate: float,
    seconds: float,
    next_request: Callable[[], bytes],
    *,
    connections: int = 64,
    ok: tuple[int, ...] = (200, 202, 302),
) -> LoadResult:
    """Send `next_request()` `rate` times a second for `seconds` over `connections`
    keep-alive connections; latencies from each request's scheduled moment."""
    result = LoadResult()
    queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
    began = time.perf_counter()

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while (item := await queue.get()) is not None:
                scheduled, request = item
                try:
                    status = await _exchange(reader, writer, request)
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    result.failed += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
                    continue
                result.statuses[status] = result.statuses.get(status, 0) + 1
                if status in ok:
                    result.latencies.append(time.perf_counter() - scheduled)
                else:
                    result.failed += 1
        finally:
            writer.close()

    workers = [asyncio.get_running_loop().create_task(connection()) for _ in range(connections)]
    total = int(rate * seconds)
    for number in range(total):
        moment = began + number / rate
        await asyncio.sleep(max(0.0, moment - time.perf_counter()))
        queue.put_nowait((moment, next_request()))
        result.sent += 1
    result.offered_for = time.perf_counter() - began
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    result.answered_for = time.perf_counter() - began
    return result
