"""A bulk import of a CSV file, the way a marketer does it after a trade show: the file
POSTed to `/v1/enrollment-jobs/csv`, then the job polled. It reports how long until the
file was accepted (parsed, validated, staged), until every lead was stored (the store
phase), and the rate at which the journeys' first emails then reach the SMTP server over
a window, next to `BareFirstEmail` (render + send in one activity) started at the same
concurrency for the same window on the same stack, once the import's workflow is stopped
and the stack is quiet.

It runs on a database of its own, created for the run and dropped after it: a 100,000-lead
import would otherwise stay in the test database and slow every later test run.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import psycopg
from sqlalchemy.engine import make_url

from bench.first_email import settled
from starter.dev.provisioning.postgres import ensure_database

if TYPE_CHECKING:
    from bench.run import Stack


@contextmanager
def scratch_database() -> Iterator[str]:
    """A new, empty database next to the test database (same server and role)."""
    base = make_url(ensure_database())
    name = f"nurture_bench_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(
        host=base.host, port=base.port, user=base.username, password=base.password,
        dbname=base.database, autocommit=True,
    )  # fmt: skip
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.close()


def _rate(times: list[float], start: float, end: float) -> float:
    inside = [t for t in times if start <= t < end]
    return round(len(inside) / (end - start), 1) if end > start else 0.0


async def bulk_import(stack: Stack, rows: int, window: float, concurrency: int) -> dict[str, Any]:
    domain = f"{uuid.uuid4().hex[:10]}.example"
    lines = ["email,first_name,company,title,country"]
    lines += [f"lead{n}@{domain},Lead{n},Acme,VP Marketing,DE" for n in range(rows)]
    body = ("\n".join(lines) + "\n").encode()
    began = time.perf_counter()
    response = await stack.http.post(
        "/v1/enrollment-jobs/csv",
        params={"journey": "welcome", "consent_source": "bench", "consent_confirmed": "true"},
        content=body,
        headers={"Content-Type": "text/csv"},
        timeout=600,
    )
    response.raise_for_status()
    accepted = time.perf_counter() - began
    job_url = f"/v1/enrollment-jobs/{response.json()['job_id']}"
    stored_at = None
    while stored_at is None:
        job = (await stack.http.get(job_url)).json()
        if job["stored_rows"] >= job["valid_rows"] or job["phase"] != "storing":
            stored_at = time.perf_counter()
        else:
            await asyncio.sleep(0.2)
    stored_in = stored_at - began
    store_phase = stored_at - began - accepted
    bulk_stored = job["stored_rows"]
    # The start phase: first emails over the window, once the first one arrived.
    await asyncio.sleep(window)
    arrived = [t for address, t in stack.sink.arrived.items() if address.endswith(domain)]
    first = min(arrived, default=stored_at)
    engine_rate = _rate(arrived, first, max(first + 1, stored_at + window))
    job = (await stack.http.get(job_url)).json()
    # The rest of the import would compete with the baseline: stop it, let the stack settle.
    await stack.client.get_workflow_handle(f"enrollment-job:{job['job_id']}").terminate("bench")
    await settled(stack)

    bare_domain = f"{uuid.uuid4().hex[:10]}.example"
    deadline = time.perf_counter() + window
    counter = iter(range(10**9))

    async def lane() -> None:
        while time.perf_counter() < deadline:
            address = f"bare{next(counter)}@{bare_domain}"
            await stack.client.start_workflow(
                "BareFirstEmail", address, id=f"bare-bulk-{uuid.uuid4().hex}",
                task_queue=stack.bare_queue,
            )  # fmt: skip

    bare_began = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    await asyncio.sleep(5)
    bare = [t for address, t in stack.sink.arrived.items() if address.endswith(bare_domain)]
    bare_rate = _rate(bare, min(bare, default=bare_began), bare_began + window)
    return {
        "rows": rows,
        "file_mib": round(len(body) / 2**20, 1),
        "accepted_in_s": round(accepted, 1),
        "stored_in_s": round(stored_in, 1),
        "stored_rows": bulk_stored,
        "store_phase_s": round(store_phase, 1),
        "stored_per_s": round(rows / store_phase, 1),
        "first_emails_per_s": engine_rate,
        "bare_first_emails_per_s": bare_rate,
        "ratio": round(engine_rate / bare_rate, 2) if bare_rate else None,
        "processed_rows_after_window": job["processed_rows"],
        "window_s": window,
    }
