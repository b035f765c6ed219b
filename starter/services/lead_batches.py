"""New leads of a bulk import written in bulk: a few statements for a batch of rows, where
the one-by-one path (`enrollment.record_lead`) takes several round trips and a transaction
per row.

Only the plain case goes this way: an address and an external id that no lead has yet,
that appear once in the batch, and an address that isn't suppressed. Everything else (an
update of a known lead, a duplicate row, a suppressed or internationalised address) is left
to the one-by-one path, which knows the rules for it. The consent decision is the same
pure function (`journeys.consent.decide`) for a lead created now.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from db.bulk import among, copy_rows, copy_then_insert, on_postgresql, with_defaults
from db.models import Account, ConsentRecord, Lead, new_id, utcnow
from db.suppression_list import SuppressionList
from journeys.accounts import company_domain
from journeys.consent import Claim, ClaimSource, ConsentAction, decide
from starter.services.consent import ConsentIn
from starter.services.enrollment import LeadIn

# Columns a LeadIn sets (besides the properties).
_FIELDS = (
    "email", "external_id", "first_name", "last_name", "company", "title", "company_size",
    "industry", "country", "timezone", "persona",
)  # fmt: skip


@dataclass(frozen=True)
class StoredLead:
    """A row's lead, written in bulk: its id and whether it needs a double opt-in."""

    lead_id: str
    double_opt_in: bool


def _insert(session: AsyncSession) -> Any:
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


async def _known(session: AsyncSession, column: Any, values: list[str]) -> set[str]:
    if not values:
        return set()
    found = await session.execute(select(column).where(among(session, column, values)))
    return {value for value in found.scalars() if value is not None}


async def _accounts(session: AsyncSession, rows: list[LeadIn]) -> dict[str, str]:
    """The account id of each company domain among `rows`, creating missing accounts."""
    names: dict[str, str | None] = {}
    for lead in rows:
        domain = company_domain(lead.email)
        if domain is not None and domain not in names:
            names[domain] = lead.company
    if not names:
        return {}
    query = select(Account.domain, Account.id).where(among(session, Account.domain, list(names)))
    found: dict[str, str] = {domain: id_ for domain, id_ in await session.execute(query)}
    missing = [  # in domain order, like the leads below: no deadlock between batches
        {"id": new_id(), "domain": domain, "name": name}
        for domain, name in sorted(names.items())
        if domain not in found
    ]
    if missing:  # a concurrent writer may create some first: the unique domain decides
        await session.execute(_insert(session)(Account).on_conflict_do_nothing(), missing)
        found = {domain: id_ for domain, id_ in await session.execute(query)}
    return found


async def store_new_leads(
    session: AsyncSession,
    rows: list[tuple[int, LeadIn]],
    consent: ConsentIn | None,
    text_version: str,
    suppressions: SuppressionList,
) -> dict[int, StoredLead]:
    """Write the rows that are plain new leads, with their accounts and consent evidence
    (the caller commits); the stored ones by line. Rows not returned take the one-by-one
    path."""
    emails = Counter(lead.email for _, lead in rows)
    external_ids = Counter(lead.external_id for _, lead in rows if lead.external_id)
    known_emails = await _known(session, Lead.email, list(emails))
    known_ids = await _known(session, Lead.external_id, list(external_ids))
    suppressed = await suppressions.suppressed_among(session, list(emails))
    plain = [
        (line, lead)
        for line, lead in rows
        if emails[lead.email] == 1
        and lead.email not in known_emails
        and lead.email not in suppressed
        and "xn--" not in lead.email  # older leads may hold the Unicode form
        and (lead.external_id is None or (
            external_ids[lead.external_id] == 1 and lead.external_id not in known_ids
        ))
    ]  # fmt: skip
    if not plain:
        return {}
    accounts = await _accounts(session, [lead for _, lead in plain])
    claim = Claim(
        source=ClaimSource.INTEGRATION,
        given=consent is not None,
        confirmed=consent is not None and consent.confirmed,
        confirmed_action=ConsentAction.IMPORTED,
    )
    decision = decide(None, None, claim)  # the same for every new, unlisted address
    values = []
    # In address order: batches written side by side then take the unique index's locks
    # in the same order, and can't deadlock on an address both hold. (Two batches holding
    # the same external id for different addresses still could: PostgreSQL then aborts
    # one, and its activity is retried.)
    plain.sort(key=lambda row: row[1].email)
    for _, lead in plain:
        row: dict[str, Any] = {name: getattr(lead, name) for name in _FIELDS}
        row["country"] = lead.country.upper() if lead.country else None
        domain = company_domain(lead.email)
        values.append({
            **row, "id": new_id(), "properties": dict(lead.properties),
            "account_id": accounts.get(domain) if domain else None,
            "consent_status": decision.status.value,
        })  # fmt: skip
    by_email = {email: lead_id for lead_id, email in await _insert_leads(session, values)}
    stored = {
        line: StoredLead(by_email[lead.email], decision.start_double_opt_in)
        for line, lead in plain
        if lead.email in by_email  # else a concurrent writer took the address meanwhile
    }
    if decision.record is not None and stored:
        evidence = {
            "action": decision.record.value,
            "source": consent.source if consent else "enrollment",
            "ip": consent.ip if consent else None,
            "user_agent": consent.user_agent if consent else None,
            "text_version": (consent.text_version if consent else None) or text_version,
            "at": utcnow(),
        }
        records = [{"lead_id": lead.lead_id, **evidence} for lead in stored.values()]
        table = cast(Table, ConsentRecord.__table__)
        if on_postgresql(session):
            records = with_defaults(table, records)
            await copy_rows(
                session, "consent_records", list(records[0]), [list(r.values()) for r in records]
            )
        else:
            await session.execute(_insert(session)(table), records)
    return stored


async def _insert_leads(session: AsyncSession, values: list[dict[str, Any]]) -> list[Any]:
    """Insert the leads, skipping addresses taken meanwhile: (id, email) of those inserted.
    `COPY` and one `INSERT … SELECT` on PostgreSQL; Core's multi-row insert elsewhere (a
    third of the time of the ORM's bulk insert for the same rows)."""
    leads = cast(Table, Lead.__table__)
    if on_postgresql(session):
        complete = with_defaults(leads, values)
        columns = list(complete[0])
        rows = [[row[c] for c in columns] for row in complete]
        return await copy_then_insert(
            session, "leads", columns, rows, ["id", "email"], order_by="email"
        )
    statement = (
        _insert(session)(leads).on_conflict_do_nothing().returning(leads.c.id, leads.c.email)
    )
    return list(await session.execute(statement, values))
