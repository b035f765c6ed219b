"""Erasure takes free text with it (issue 19, item 6): a rejection reason naming a person's
address and phone number is gone from every table, from the lead workflow's history (it
never entered it), and from SQLite's files."""

from __future__ import annotations

from pathlib import Path

import httpx
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.client import Client
from temporalio.worker import Worker

from db.engine import create_engine_for, session_factory
from db.migrate import upgrade_to_head
from db.models import FeedbackNote, Lead, SalesFeedbackRecord, StageTransition
from starter.services.erasure import erase_lead
from starter.settings import Settings
from tests.conftest import ADMIN_KEY, SALES_KEY
from tests.lifecycle_helpers import decider, eventually, lead_row
from tests.test_sales_loop import make_mql
from tests.traces import history_holds, tables_holding
from workflows.contracts import lead_workflow_id

SECRET_TEXT = ("ada.private@gmail.com", "+1-555-0100")
REASON = f"call {SECRET_TEXT[0]} {SECRET_TEXT[1]}"


async def test_a_rejection_reason_never_enters_history_and_leaves_with_the_lead(
    api: httpx.AsyncClient, worker: Worker, sessions: async_sessionmaker, temporal_client: Client
) -> None:
    lead_id = await make_mql(api, sessions, decider())
    response = await api.post(
        f"/v1/leads/{lead_id}/sales-feedback",
        json={"outcome": "reject", "reason": REASON},
        headers={"Authorization": f"Bearer {SALES_KEY}"},
    )
    assert response.status_code == 200, response.text
    await eventually(lambda: lead_row(sessions, lead_id), lambda r: r.rejections == 1)
    assert not await history_holds(temporal_client, lead_workflow_id(lead_id), *SECRET_TEXT)

    erased = await api.delete(
        f"/v1/leads/{lead_id}", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    )

    assert erased.status_code == 200, erased.text
    assert await tables_holding(sessions, *SECRET_TEXT) == []


def files_holding(folder: Path, *secrets: str) -> list[tuple[str, str]]:
    """(file, secret) for every SQLite file (database, -wal, -shm) holding a secret."""
    return [
        (file.name, secret)
        for file in folder.iterdir()
        if file.name.startswith("nurture.db")
        for secret in secrets
        if secret.encode() in file.read_bytes()
    ]


async def test_an_erasure_on_sqlite_leaves_nothing_in_its_files(
    tmp_path: Path, temporal_client: Client, settings: Settings
) -> None:
    path = tmp_path / "nurture.db"
    url = f"sqlite:///{path}"
    upgrade_to_head(url)
    engine = create_engine_for(url)
    sessions = session_factory(engine)
    email = "eve.erasable@example.com"
    try:
        async with sessions() as session:
            lead = Lead(email=email, first_name="Eve", consent_status="confirmed")
            session.add(lead)
            await session.flush()
            session.add(FeedbackNote(lead_id=lead.id, text=REASON))
            session.add(
                SalesFeedbackRecord(idempotency_key="k", lead_id=lead.id, outcome="reject",
                                    reason=REASON, from_stage="mql", to_stage="recycled")
            )  # fmt: skip
            session.add(
                StageTransition(lead_id=lead.id, from_stage="mql", to_stage="recycled",
                                cause=f"sales reject: {REASON}", actor="rep:kim")
            )  # fmt: skip
            await session.commit()
            lead_id = lead.id

        await erase_lead(temporal_client, sessions, settings, lead_id)

        assert files_holding(tmp_path, email, *SECRET_TEXT) == []
    finally:
        await engine.dispose()
