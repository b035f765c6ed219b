"""`python -m bench.broadcast`: a broadcast to N leads (10,000 and 100,000 by default) into
Postfix's `smtp-sink` (C, not the bottleneck), next to a bare baseline measured in the same
run: a plain Python loop that renders the same template for each lead and sends it over the
same number of SMTP connections, with no bookkeeping (the physical limit of this machine).

For each N: messages/s (audience fixed → last message sent) with two worker processes, a
worker's peak RSS and the workers' CPU per message, PostgreSQL rows written per message
(pg_stat_database), and the bare loop's messages/s and CPU per message. Every figure comes
from fresh workers and a fresh sink; the leads are inserted before and removed after.
Figures in docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosmtplib
from sqlalchemy import delete, insert, select, text
from sqlalchemy.ext.asyncio import async_sessionmaker

from activities.smtp_delivery import WIRE_POLICY
from bench.processes import cpu_seconds, rss_mib
from bench.run import _spawn
from db.engine import create_engine_for, session_factory
from db.migrate import upgrade_to_head
from db.models import (
    Broadcast,
    BroadcastRecipient,
    EmailLink,
    Lead,
    OutboxEmail,
    SegmentMembership,
    new_id,
)
from journeys.rendering import lead_fields, render_email, template_context
from starter.dev.provisioning.postfix import ensure_postfix
from starter.dev.provisioning.postgres import ensure_database
from starter.dev.provisioning.temporal import register_search_attributes, start_dev_server
from starter.dev.smtp_sink import free_port
from starter.services.broadcasts import BroadcastIn, create_broadcast, read_broadcast
from starter.temporal_client import connect
from workflows import search_attributes

ROOT = Path(__file__).resolve().parent.parent
CONNECTIONS = 4  # SMTP connections per batch (BROADCAST_CONNECTIONS), and the bare loop's
WORKERS = 2  # worker processes: the broadcast's two partitions run on both
TEMPLATE = "newsletter"


@asynccontextmanager
async def smtp_sink() -> AsyncIterator[int]:
    """Postfix's smtp-sink on a loopback port: accepts and discards, in C."""
    ensure_postfix()
    port = free_port()
    sink = await asyncio.create_subprocess_exec(
        "smtp-sink", "-u", "postfix", f"127.0.0.1:{port}", "1024",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(100):
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            await asyncio.sleep(0.05)
        yield port
    finally:
        sink.terminate()
        await sink.wait()


async def _insert_audience(sessions: async_sessionmaker, count: int, segment: str) -> list[str]:
    ids = [new_id() for _ in range(count)]
    async with sessions() as session:
        for start in range(0, count, 5000):
            chunk = ids[start : start + 5000]
            await session.execute(
                insert(Lead),
                [{"id": i, "email": f"bc-{i}@bench.example", "first_name": "Ada",
                  "consent_status": "confirmed"} for i in chunk],
            )  # fmt: skip
            await session.execute(
                insert(SegmentMembership), [{"lead_id": i, "segment": segment} for i in chunk]
            )
        await session.commit()
    return ids


async def _remove(sessions: async_sessionmaker, ids: list[str], broadcast_id: str | None) -> None:
    async with sessions() as session:
        for start in range(0, len(ids), 5000):
            chunk = ids[start : start + 5000]
            outbox = select(OutboxEmail.id).where(OutboxEmail.lead_id.in_(chunk))
            await session.execute(delete(EmailLink).where(EmailLink.outbox_id.in_(outbox)))
            await session.execute(delete(OutboxEmail).where(OutboxEmail.lead_id.in_(chunk)))
            await session.execute(
                delete(SegmentMembership).where(SegmentMembership.lead_id.in_(chunk))
            )
        if broadcast_id:
            await session.execute(
                delete(BroadcastRecipient).where(BroadcastRecipient.broadcast_id == broadcast_id)
            )
            await session.execute(delete(Broadcast).where(Broadcast.id == broadcast_id))
        for start in range(0, len(ids), 5000):
            await session.execute(delete(Lead).where(Lead.id.in_(ids[start : start + 5000])))
        await session.commit()


async def _rows_written(sessions: async_sessionmaker) -> int:
    async with sessions() as session:
        found = await session.execute(
            text(
                "SELECT tup_inserted + tup_updated + tup_deleted FROM pg_stat_database "
                "WHERE datname = current_database()"
            )
        )
        return int(found.scalar_one())


@dataclass
class Figures:
    messages: int
    seconds: float
    cpu_seconds: float
    peak_rss_mib: float | None = None
    rows_per_message: float | None = None

    def as_dict(self) -> dict[str, Any]:
        per_second = self.messages / self.seconds if self.seconds else 0.0
        return {
            "messages": self.messages,
            "seconds": round(self.seconds, 2),
            "messages_per_second": round(per_second, 1),
            "cpu_ms_per_message": round(1000 * self.cpu_seconds / max(1, self.messages), 3),
            "peak_rss_mib": None if self.peak_rss_mib is None else round(self.peak_rss_mib, 1),
            "rows_per_message": None
            if self.rows_per_message is None
            else round(self.rows_per_message, 2),
        }


async def engine_side(database: str, count: int) -> Figures:
    """The broadcast through Nurture: a worker process, a dev server, PostgreSQL."""
    port = free_port()
    server = await start_dev_server(port=port)
    await register_search_attributes(server.client, "default", search_attributes.ALL)
    engine = create_engine_for(database)
    sessions = session_factory(engine)
    segment = f"bench-{uuid.uuid4().hex[:8]}"
    ids = await _insert_audience(sessions, count, segment)
    broadcast_id: str | None = None
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    try:
        async with smtp_sink() as sink_port:
            env = {
                **os.environ, "TEMPORAL_ADDRESS": f"127.0.0.1:{port}", "NURTURE_TASK_QUEUE": queue,
                "DATABASE_URL": database, "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(sink_port),
                "NURTURE_SECRET_KEY": secrets.token_urlsafe(32), "NURTURE_QUIET_HOURS": "",
                "NURTURE_FREQUENCY_CAP": "", "BROADCAST_CONNECTIONS": str(CONNECTIONS),
                "PUBLIC_BASE_URL": "http://nurture.bench", "PYTHONUNBUFFERED": "1",
            }  # fmt: skip
            workers = [
                await _spawn([sys.executable, str(ROOT / "worker.py")], env, b"worker on")
                for _ in range(WORKERS)
            ]
            try:
                client = await connect(f"127.0.0.1:{port}", "default")
                rows_before = await _rows_written(sessions)
                cpu_before = sum(cpu_seconds(w.pid) for w in workers)
                began = time.monotonic()
                spec = BroadcastIn.model_construct(
                    name="bench", template=TEMPLATE, segment=segment, topic="newsletter",
                    send_at=None, local_time=None, rate_per_second=None, ab_test=None,
                )  # fmt: skip
                created = await create_broadcast(sessions, client, queue, spec)
                broadcast_id = created.broadcast_id
                peak = 0.0
                while True:
                    peak = max(peak, *(rss_mib(w.pid) for w in workers))
                    view = await read_broadcast(sessions, broadcast_id)
                    if view.status == "done":
                        break
                    await asyncio.sleep(0.5)
                seconds = time.monotonic() - began
                cpu = sum(cpu_seconds(w.pid) for w in workers) - cpu_before
                rows = await _rows_written(sessions) - rows_before
                sent = view.counts.sent
            finally:
                for w in workers:
                    w.terminate()
                    await w.wait()
        return Figures(sent, seconds, cpu, peak, rows / max(1, sent))
    finally:
        await _remove(sessions, ids, broadcast_id)
        await engine.dispose()
        await server.shutdown()


async def bare_side(count: int) -> Figures:
    """The physical limit: render the same template per lead and send it over the same
    number of SMTP connections; no database, no Temporal, no bookkeeping."""
    async with smtp_sink() as port:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for n in range(count):
            queue.put_nowait(n)

        async def connection() -> None:
            async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port) as smtp:
                while not queue.empty():
                    n = queue.get_nowait()
                    lead = {"id": str(n), "first_name": "Ada", "persona": None}
                    context = template_context(
                        lead_fields(type("L", (), lead)), base_url="http://nurture.bench",
                        sender_name="Nurture", postal_address="1 Bench Street",
                    )  # fmt: skip
                    rendered = render_email(TEMPLATE, context)
                    from email.message import EmailMessage

                    message = EmailMessage()
                    message["From"] = "hello@nurture.bench"
                    message["To"] = f"bare-{n}@bench.example"
                    message["Subject"] = rendered.subject
                    message.set_content(rendered.text)
                    message.add_alternative(rendered.html, subtype="html")
                    await smtp.sendmail(
                        "hello@nurture.bench", [message["To"]], message.as_bytes(policy=WIRE_POLICY)
                    )

        cpu_before = time.process_time()
        began = time.monotonic()
        await asyncio.gather(*(connection() for _ in range(CONNECTIONS)))
        return Figures(count, time.monotonic() - began, time.process_time() - cpu_before)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leads", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "broadcast-results.json")
    args = parser.parse_args()
    database = ensure_database()
    upgrade_to_head(database)
    results = []
    for count in args.leads:
        engine = await engine_side(database, count)
        bare = await bare_side(count)
        row = {"leads": count, "engine": engine.as_dict(), "bare": bare.as_dict()}
        ratio = engine.as_dict()["messages_per_second"] / max(
            0.001, bare.as_dict()["messages_per_second"]
        )
        row["ratio"] = round(ratio, 2)
        results.append(row)
        print(json.dumps(row), flush=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
