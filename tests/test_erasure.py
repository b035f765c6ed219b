"""Erasure takes free text with it (issue 19, item 6): a rejection reason naming a person's
address and phone number is gone from every table, from the lead workflow's history (it
never entered it), and from SQLite's files. So are the targets of the lead's tracked links
(a click on one afterwards gets the 404 page), a broadcast server's reply quoting its
address, and its topic choices."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.client import Client
from temporalio.worker import Worker

from db.engine import create_engine_for, session_factory
from db.migrate import upgrade_to_head
from db.models import (
    Broadcast,
    BroadcastRecipient,
    EmailLink,
    FeedbackNote,
    Lead,
    OutboxEmail,
    SalesFeedbackRecord,
    StageTransition,
    TopicSubscription,
)
from db.writes import is_transient_conflict
from starter.services.erasure import erase_lead
from starter.services.link_tokens import LinkTokens
from starter.settings import Settings
from tests.conftest import ADMIN_KEY, SALES_KEY
from tests.lifecycle_helpers import create_confirmed_lead, decider, eventually, lead_row
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


@dataclass(frozen=True)
class SentLead:
    """A lead that got a broadcast: a link whose target holds its first name, a bounce
    reply quoting its address, and a topic it left."""

    lead_id: str
    email: str
    first_name: str
    outbox_id: int
    broadcast_id: str

    @property
    def personal_url(self) -> str:
        return f"https://www.example.com/offer?name={self.first_name}"


@pytest.fixture
async def sent_lead(sessions: async_sessionmaker) -> SentLead:
    token = uuid.uuid4().hex[:8]
    email, first_name = f"lin-{token}@example.com", f"Lin{token}"
    async with sessions() as session:
        lead = Lead(email=email, first_name=first_name, consent_status="confirmed")
        broadcast = Broadcast(name=f"launch {token}", template="welcome", topic="newsletter")
        session.add_all([lead, broadcast])
        await session.flush()
        outbox = OutboxEmail(
            idempotency_key=f"erasure-test:{token}", lead_id=lead.id,
            workflow_id=f"broadcast:{broadcast.id}", step_id="send", template="welcome",
            message_id=f"<{token}@nurture.example>", status="sent", subject=f"Hi {first_name}",
        )  # fmt: skip
        session.add(outbox)
        await session.flush()
        sent = SentLead(lead.id, email, first_name, outbox.id, broadcast.id)
        session.add_all([
            EmailLink(outbox_id=outbox.id, position=0, url=sent.personal_url, clicks=2),
            EmailLink(outbox_id=outbox.id, position=1, url="https://www.example.com/pricing",
                      name="pricing"),
            BroadcastRecipient(broadcast_id=broadcast.id, position=0, lead_id=lead.id,
                               due_at=datetime.now(UTC), status="bounced",
                               reason=f"550 5.1.1 <{email}>: no such user",
                               outbox_id=outbox.id),
            TopicSubscription(lead_id=lead.id, topic="events", subscribed=False,
                              source="preference page"),
        ])  # fmt: skip
        await session.commit()
    return sent


async def erase(api: httpx.AsyncClient, lead_id: str) -> None:
    response = await api.delete(
        f"/v1/leads/{lead_id}", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    )
    assert response.status_code == 200, response.text


async def test_erasure_blanks_the_leads_link_targets_and_keeps_their_clicks(
    api: httpx.AsyncClient, sessions: async_sessionmaker, sent_lead: SentLead
) -> None:
    await erase(api, sent_lead.lead_id)

    async with sessions() as session:
        links = (
            await session.execute(
                select(EmailLink.url, EmailLink.clicks)
                .where(EmailLink.outbox_id == sent_lead.outbox_id)
                .order_by(EmailLink.position)
            )
        ).all()
    assert [tuple(link) for link in links] == [("", 2), ("", 0)]
    assert await tables_holding(sessions, sent_lead.first_name, sent_lead.email) == []


async def test_a_click_on_an_erased_leads_link_gets_the_404_page(
    api: httpx.AsyncClient, settings: Settings, sent_lead: SentLead
) -> None:
    click = f"/t/c/{LinkTokens(settings.require_secret_key()).link(sent_lead.outbox_id, 0)}"
    before = await api.get(click)
    assert before.status_code == 302 and before.headers["location"] == sent_lead.personal_url

    await erase(api, sent_lead.lead_id)
    after = await api.get(click)

    assert after.status_code == 404
    assert after.headers["content-type"].startswith("text/html")
    assert "location" not in after.headers and sent_lead.first_name not in after.text


async def test_erasure_drops_a_broadcast_servers_reply_and_keeps_the_recipient(
    api: httpx.AsyncClient, sessions: async_sessionmaker, sent_lead: SentLead
) -> None:
    await erase(api, sent_lead.lead_id)

    async with sessions() as session:
        recipient = (
            await session.execute(
                select(BroadcastRecipient).where(
                    BroadcastRecipient.broadcast_id == sent_lead.broadcast_id
                )
            )
        ).scalar_one()
    assert (recipient.lead_id, recipient.status, recipient.reason) == (
        sent_lead.lead_id, "bounced", None,
    )  # fmt: skip


async def test_erasure_deletes_the_leads_topic_choices(
    api: httpx.AsyncClient, sessions: async_sessionmaker, sent_lead: SentLead
) -> None:
    await erase(api, sent_lead.lead_id)

    async with sessions() as session:
        choices = (
            await session.execute(
                select(TopicSubscription).where(TopicSubscription.lead_id == sent_lead.lead_id)
            )
        ).all()
    assert choices == []


async def test_an_erasure_chosen_to_break_a_deadlock_is_run_again_and_succeeds(
    sessions: async_sessionmaker, temporal_client: Client, settings: Settings
) -> None:
    lead_id = await create_confirmed_lead(
        sessions, {"email": f"dl-{uuid.uuid4().hex[:8]}@example.com"}
    )
    async with sessions() as session:
        session.add(OutboxEmail(
            idempotency_key=f"dl-{lead_id}", lead_id=lead_id, workflow_id="w", step_id="s",
            template="welcome", message_id=f"<dl-{lead_id}@x>", subject="Hello",
        ))  # fmt: skip
        await session.commit()
    # Another transaction (a worker's send) holds the lead's outbox row and then wants the
    # lead, while the erasure holds the lead and wants the outbox row: a deadlock.
    async with sessions() as other:
        await other.execute(
            select(OutboxEmail).where(OutboxEmail.lead_id == lead_id).with_for_update()
        )
        erasure = asyncio.create_task(erase_lead(temporal_client, sessions, settings, lead_id))
        await asyncio.sleep(0.3)  # the erasure now waits for the outbox row
        try:
            await other.execute(select(Lead).where(Lead.id == lead_id).with_for_update())
            await other.rollback()  # PostgreSQL broke the deadlock on the erasure's side
        except DBAPIError as exc:
            assert is_transient_conflict(exc)  # … or on this side
            await other.rollback()
        result = await asyncio.wait_for(erasure, 30)

    assert result.lead_id == lead_id
    assert (await lead_row(sessions, lead_id)).erased_at is not None
