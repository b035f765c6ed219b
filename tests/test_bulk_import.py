"""A bulk import's two phases on the real stack: its new leads written in bulk first (with
their accounts and consent evidence), then their journeys started; rows that aren't plain
new leads (a known lead, a duplicate, a suppressed address) written one by one."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import async_sessionmaker
from temporalio.client import Client
from temporalio.worker import Worker

from activities.contracts import StoreJobLeadsRequest
from activities.enrollment_jobs import EnrollmentJobActivities
from db.engine import create_engine_for, session_factory
from db.models import Account, Base, ConsentRecord, EnrollmentJob, EnrollmentJobRow, Lead
from db.suppression_list import SuppressionList
from journeys.consent import SuppressionReason
from journeys.registry import get_journey
from starter.dev.smtp_sink import SmtpSink
from starter.services.bulk_rows import parse_json_rows
from starter.services.consent import ConsentIn
from starter.services.enrollment_jobs import _stage_job
from starter.services.lead_workflow import LeadLifecycle
from starter.settings import Settings
from tests.test_interface import finished


def _domain() -> str:
    return f"import-{uuid.uuid4().hex[:8]}.example"


async def _csv_job(api: httpx.AsyncClient, text: str, confirmed: bool = True) -> dict:
    response = await api.post(
        "/v1/enrollment-jobs/csv",
        params={"journey": "welcome", "consent_source": "fair",
                "consent_confirmed": str(confirmed).lower()},
        content=text,
        headers={"Content-Type": "text/csv"},
    )  # fmt: skip
    assert response.status_code == 202, response.text
    return await finished(api, response.json())


async def test_new_leads_are_stored_in_bulk_with_accounts_and_consent_then_each_journey_starts(
    api: httpx.AsyncClient, worker: Worker, sessions: async_sessionmaker, smtp: SmtpSink
) -> None:
    domain = _domain()
    rows = "".join(f"p{i}@{domain},P{i},Acme,crm-{domain}-{i}\n" for i in range(250))

    job = await _csv_job(api, "email,first_name,company,external_id\n" + rows)

    assert (job["phase"], job["stored_rows"], job["enrolled"]) == ("done", 250, 250)
    async with sessions() as session:
        query = select(Lead).where(Lead.email.like(f"%@{domain}"))
        leads = (await session.execute(query)).scalars().all()
        accounts = {lead.account_id for lead in leads}
        evidence = await session.scalar(
            select(func.count()).select_from(ConsentRecord).where(
                ConsentRecord.lead_id.in_([lead.id for lead in leads]),
                ConsentRecord.action == "imported", ConsentRecord.source == "fair",
            )
        )  # fmt: skip
        account = await session.get(Account, accounts.pop())
    assert len(leads) == 250 and {lead.consent_status for lead in leads} == {"confirmed"}
    assert not accounts and account is not None and account.domain == domain  # one account
    assert evidence == 250
    assert sorted(lead.external_id or "" for lead in leads)[0] == f"crm-{domain}-0"
    await smtp.wait_for(f"p249@{domain}", 1, within=60)


async def test_known_leads_duplicates_and_suppressed_addresses_are_written_one_by_one(
    api: httpx.AsyncClient, worker: Worker, sessions: async_sessionmaker, settings: Settings
) -> None:
    domain = _domain()
    known = (await _csv_job(api, f"email,first_name\nknown@{domain},Old\n"))["stored_rows"]
    async with sessions() as session:  # someone who unsubscribed (and was erased) before
        await SuppressionList(settings.require_secret_key()).add(
            session, f"gone@{domain}", SuppressionReason.UNSUBSCRIBED
        )
        await session.commit()
    text = (
        "email,first_name\n"
        f"known@{domain},New\n"  # an update of a known lead
        f"twice@{domain},First\n"
        f"twice@{domain},Second\n"  # the same address twice in one file
        f"gone@{domain},Gone\n"  # suppressed
        f"fresh@{domain},Fresh\n"
    )

    job = await _csv_job(api, text)

    assert known == 1
    assert (job["valid_rows"], job["stored_rows"], job["processed_rows"]) == (5, 5, 5)
    assert job["enrolled"] + job["already_enrolled"] == 5 and job["failed_rows"] == 0
    async with sessions() as session:
        names = dict(
            (await session.execute(
                select(Lead.email, Lead.first_name).where(Lead.email.like(f"%@{domain}"))
            )).all()
        )  # fmt: skip
    assert names[f"known@{domain}"] == "New"
    assert names[f"twice@{domain}"] in ("First", "Second") and names[f"fresh@{domain}"] == "Fresh"
    assert job["suppressed"] == [{"line": 5, "reason": "unsubscribed"}]


async def test_leads_imported_without_confirmed_consent_get_a_double_opt_in(
    api: httpx.AsyncClient, worker: Worker, smtp: SmtpSink
) -> None:
    email = f"doi@{_domain()}"

    job = await _csv_job(api, f"email\n{email}\n", confirmed=False)

    assert job["stored_rows"] == 1
    await smtp.wait_for(email, 1, within=60)
    await asyncio.sleep(2)  # room for a second request, were there one
    [confirmation] = smtp.to(email)
    assert "confirm" in confirmation["Subject"].lower()


async def _staged_job(sessions: async_sessionmaker, leads: list[dict[str, str]]) -> tuple[str, int]:
    job_id = str(uuid.uuid4())
    async with sessions() as session:
        chunks = await _stage_job(
            session, job_id=job_id, definition=get_journey("welcome"),
            parsed=parse_json_rows(leads), source="json",
            consent=ConsentIn(source="t", confirmed=True), created_by="test",
        )  # fmt: skip
        await session.commit()
    return job_id, chunks


async def test_two_imports_stored_side_by_side_share_accounts_and_write_each_address_once(
    sessions: async_sessionmaker, temporal_client: Client, settings: Settings
) -> None:
    domains = [_domain() for _ in range(20)]
    shared = [f"both@{d}" for d in domains]
    own_a, own_b = [f"a@{d}" for d in domains], [f"b@{d}" for d in reversed(domains)]
    first = await _staged_job(sessions, [{"email": e} for e in shared + own_a])
    second = await _staged_job(sessions, [{"email": e} for e in own_b + shared[::-1]])
    activities = EnrollmentJobActivities(
        LeadLifecycle(temporal_client, settings.task_queue), sessions, "v1",
        SuppressionList(settings.require_secret_key()),
    )  # fmt: skip

    results = await asyncio.gather(
        *(activities.store_job_leads(StoreJobLeadsRequest(job_id=job, first=0, last=n - 1))
          for job, n in (first, second))
    )  # fmt: skip

    assert sum(r.stored for r in results) == 60  # each shared address by one of the two
    async with sessions() as session:
        query = select(Lead.email, Lead.account_id).where(Lead.email.in_(shared + own_a + own_b))
        rows = (await session.execute(query)).all()
        accounts = await session.scalar(
            select(func.count()).select_from(Account).where(Account.domain.in_(domains))
        )
    assert len(rows) == 60 and accounts == 20
    assert len({account for _, account in rows}) == 20


async def test_a_retried_store_activity_writes_no_lead_twice(
    sessions: async_sessionmaker, temporal_client: Client, settings: Settings
) -> None:
    domain = _domain()
    job_id = str(uuid.uuid4())
    parsed = parse_json_rows([{"email": f"r{i}@{domain}"} for i in range(30)])
    async with sessions() as session:
        chunks = await _stage_job(
            session, job_id=job_id, definition=get_journey("welcome"), parsed=parsed,
            source="json", consent=ConsentIn(source="t", confirmed=True), created_by="test",
        )  # fmt: skip
        await session.commit()
    activities = EnrollmentJobActivities(
        LeadLifecycle(temporal_client, settings.task_queue),
        sessions,
        "v1",
        SuppressionList(settings.require_secret_key()),
    )
    request = StoreJobLeadsRequest(job_id=job_id, first=0, last=chunks - 1)

    first = await activities.store_job_leads(request)
    again = await activities.store_job_leads(request)  # as after a lost completion

    assert (first.rows, first.stored) == (30, 30)
    assert (again.rows, again.stored) == (0, 0)
    async with sessions() as session:
        job = await session.get(EnrollmentJob, job_id)
        count = await session.scalar(
            select(func.count()).select_from(Lead).where(Lead.email.like(f"%@{domain}"))
        )
    assert job is not None and job.stored_rows == 30 and count == 30


async def test_the_store_phase_runs_on_sqlite_as_the_demo_uses_it(
    temporal_client: Client, settings: Settings, tmp_path: Path
) -> None:
    engine = create_engine_for(f"sqlite:///{tmp_path / 'demo.db'}")
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    sessions = session_factory(engine)
    job_id, chunks = await _staged_job(sessions, [{"email": f"s{i}@{_domain()}"} for i in range(5)])
    activities = EnrollmentJobActivities(
        LeadLifecycle(temporal_client, settings.task_queue), sessions, "v1",
        SuppressionList(settings.require_secret_key()),
    )  # fmt: skip

    result = await activities.store_job_leads(
        StoreJobLeadsRequest(job_id=job_id, first=0, last=chunks - 1)
    )

    assert (result.rows, result.stored) == (5, 5)
    async with sessions() as session:
        marked = await session.scalar(
            select(func.count()).select_from(EnrollmentJobRow).where(
                EnrollmentJobRow.job_id == job_id, EnrollmentJobRow.lead_id.is_not(None)
            )
        )  # fmt: skip
    await engine.dispose()
    assert marked == 5
