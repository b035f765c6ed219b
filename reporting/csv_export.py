"""CSV export with formula injection neutralised: a cell that a spreadsheet would read as
a formula (starting with = + - @, or a tab or carriage return) gets a leading apostrophe."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: object) -> str:
    """The cell's text, made inert for spreadsheets (OWASP's CSV injection advice)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_lines(header: Sequence[str], rows: Iterable[Sequence[object]]) -> Iterable[str]:
    """The header line, then one CSV line per row, every cell neutralised."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    yield buffer.getvalue()
    for row in rows:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([neutralise(cell) for cell in row])
        yield buffer.getvalue()
