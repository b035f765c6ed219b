"""Parsing a bulk enrollment (a JSON array or a CSV file) into valid leads and per-row
errors. Pure: no database, no Temporal."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from starter.services.enrollment import LeadIn

# Rows per request: a JSON array is validated inside the request (10,000 take about a
# second); a CSV file (a trade-show list, a CRM export) may be ten times larger.
MAX_ROWS = 10_000
MAX_CSV_ROWS = 100_000
# CSV columns that are lead fields; any other column becomes a lead property.
LEAD_COLUMNS = frozenset(LeadIn.model_fields) - {"properties"}


class RowError(BaseModel):
    """Why one row was not enrolled: its line (CSV: the file's line, header = 1; JSON: the
    array index + 1), the field at fault and the reason. Never the rejected value."""

    line: int
    field: str | None
    reason: str


@dataclass
class ParsedRows:
    """Valid leads with their line numbers, and the rows that were refused."""

    leads: list[tuple[int, LeadIn]] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    total: int = 0


class TooManyRows(ValueError):
    """More rows in one request than its kind allows (`MAX_ROWS`, `MAX_CSV_ROWS`)."""


def _validate(line: int, raw: Any, parsed: ParsedRows, limit: int = MAX_ROWS) -> None:
    parsed.total += 1
    if parsed.total > limit:
        raise TooManyRows(f"at most {limit} rows per request")
    try:
        parsed.leads.append((line, LeadIn.model_validate(raw)))
    except ValidationError as exc:
        for error in exc.errors(include_url=False, include_input=False):
            where = ".".join(str(part) for part in error["loc"]) or None
            parsed.errors.append(RowError(line=line, field=where, reason=error["msg"]))


def parse_json_rows(rows: list[Any]) -> ParsedRows:
    """Validate each element of a JSON array as a lead."""
    parsed = ParsedRows()
    for index, raw in enumerate(rows):
        _validate(index + 1, raw, parsed)
    return parsed


def _csv_row(row: dict[str | None, Any]) -> dict[str, Any]:
    lead: dict[str, Any] = {}
    properties: dict[str, str] = {}
    for name, value in row.items():
        if name is None:  # more cells than headers
            raise ValueError("more cells than the header has columns")
        if value is None or value == "":
            continue
        key = name.strip()
        if key in LEAD_COLUMNS:
            lead[key] = value
        elif key:
            properties[key] = value
    if properties:
        lead["properties"] = properties
    return lead


def parse_csv_rows(text: str) -> ParsedRows:
    """Validate each row of a CSV file with a header row (`email,first_name,…`); unknown
    columns become lead properties. Numbers are parsed by the lead model."""
    reader = csv.DictReader(io.StringIO(text))
    headers = [h.strip() for h in (reader.fieldnames or [])]
    if "email" not in headers:
        raise ValueError("the CSV needs a header row with an email column")
    parsed = ParsedRows()
    for row in reader:
        line = reader.line_num
        try:
            raw = _csv_row(row)
        except ValueError as exc:
            parsed.total += 1
            if parsed.total > MAX_CSV_ROWS:
                raise TooManyRows(f"at most {MAX_CSV_ROWS} rows per request") from None
            parsed.errors.append(RowError(line=line, field=None, reason=str(exc)))
            continue
        _validate(line, raw, parsed, MAX_CSV_ROWS)
    return parsed
