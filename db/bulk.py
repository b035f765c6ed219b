"""Statements for thousands of rows at once. On PostgreSQL: `COPY` for the rows and one
array parameter for a list of values, so a batch costs a few short statements — a
multi-row `INSERT … VALUES` or a long `IN (…)` list is a new statement text of thousands
of placeholders each time, which psycopg converts anew (a third of a bulk import's time).
Elsewhere (the demo's SQLite) the portable forms.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from psycopg.types.json import Json
from sqlalchemy import ARRAY, ColumnElement, Table, any_, bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession


def on_postgresql(session: AsyncSession) -> bool:
    """Whether the session's database is PostgreSQL (with psycopg)."""
    return session.get_bind().dialect.name == "postgresql"


def among(session: AsyncSession, column: Any, values: Sequence[Any]) -> ColumnElement[bool]:
    """`column` is one of `values`: `= ANY(array)` on PostgreSQL (one parameter), else
    `IN (…)`."""
    if on_postgresql(session):
        return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
    result: ColumnElement[bool] = column.in_(list(values))
    return result


def with_defaults(table: Table, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows with the Python-side defaults of the columns they leave out (an ORM or
    Core insert applies them; `COPY` does not), evaluated for each row. Only plain values
    and callables without arguments are supported (a SQL expression or a default reading
    its context raises)."""
    filled = []
    for row in rows:
        complete = dict(row)
        for column in table.columns:
            default = column.default
            if column.name in complete or default is None:
                continue
            if not (default.is_scalar or default.is_callable):
                raise ValueError(f"{table.name}.{column.name}: a default COPY can't evaluate")
            arg = default.arg  # type: ignore[attr-defined]
            complete[column.name] = arg(None) if default.is_callable else arg
        filled.append(complete)
    return filled


def _adapted(value: Any) -> Any:
    return Json(value) if isinstance(value, dict | list) else value


async def copy_rows(
    session: AsyncSession, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    """`COPY` the rows into `table` in the session's transaction (PostgreSQL only)."""
    connection = await session.connection()
    raw = (await connection.get_raw_connection()).driver_connection
    assert raw is not None
    names = ", ".join(f'"{c}"' for c in columns)
    async with raw.cursor() as cursor:
        async with cursor.copy(f'COPY "{table}" ({names}) FROM STDIN') as copy:
            for row in rows:
                await copy.write_row([_adapted(v) for v in row])


async def copy_then_insert(
    session: AsyncSession,
    table: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    returning: Sequence[str],
    order_by: str | None = None,
) -> list[tuple[Any, ...]]:
    """Insert the rows into `table`, skipping those a unique key already holds, and return
    `returning` of the inserted ones (PostgreSQL only): `COPY` into a temporary table of
    the same columns, then one `INSERT … SELECT … ON CONFLICT DO NOTHING RETURNING`, in
    `order_by`'s order (writers of overlapping batches then take the unique index's locks
    in the same order)."""
    order = f'ORDER BY "{order_by}"' if order_by else ""
    staging = f"staging_{uuid.uuid4().hex[:12]}"
    names = ", ".join(f'"{c}"' for c in columns)
    await session.execute(
        text(
            f'CREATE TEMPORARY TABLE "{staging}" ON COMMIT DROP AS '
            f'SELECT {names} FROM "{table}" WITH NO DATA'
        )
    )
    await copy_rows(session, staging, columns, rows)
    inserted = await session.execute(
        text(
            f'INSERT INTO "{table}" ({names}) SELECT {names} FROM "{staging}" {order} '
            f"ON CONFLICT DO NOTHING RETURNING {', '.join(returning)}"
        )
    )
    await session.execute(text(f'DROP TABLE "{staging}"'))
    return [tuple(row) for row in inserted]
