"""Where a piece of text survives: every table of the database, a workflow's history with
its payloads decoded. Used by the erasure and opt-out tests."""

from __future__ import annotations

import base64
import json
import re

from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.client import Client


async def tables_holding(sessions: async_sessionmaker, *needles: str) -> list[str]:
    """The tables (of the public schema) in which any row holds any of `needles`."""
    found = []
    async with sessions() as session:
        tables = (await session.execute(text(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ))).scalars().all()  # fmt: skip
        for table in tables:
            dump = "\n".join(map(str, await session.execute(text(f'SELECT * FROM "{table}"'))))
            if any(needle in dump for needle in needles):
                found.append(table)
    return found


async def history_holds(client: Client, workflow_id: str, *needles: str) -> bool:
    """Whether the workflow's history, payloads decoded, holds any of `needles`."""
    history = (await client.get_workflow_handle(workflow_id).fetch_history()).to_json()
    decoded = "".join(
        base64.b64decode(data).decode(errors="replace")
        for data in re.findall(r'"data": "([A-Za-z0-9+/=]+)"', json.dumps(json.loads(history)))
    )
    return any(needle in history or needle in decoded for needle in needles)
