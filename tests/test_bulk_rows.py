"""Bulk enrollment parsing: every bad row reported by line and field, the rest kept."""

from __future__ import annotations

import pytest

from starter.services.bulk_rows import (
    MAX_CSV_ROWS,
    MAX_ROWS,
    TooManyRows,
    parse_csv_rows,
    parse_json_rows,
)


def test_csv_rows_are_numbered_by_their_line_in_the_file() -> None:
    parsed = parse_csv_rows("email,first_name\nada@example.com,Ada\nnot-an-email,Bob\n")

    assert [(line, lead.email) for line, lead in parsed.leads] == [(2, "ada@example.com")]
    assert [(e.line, e.field) for e in parsed.errors] == [(3, "email")]
    assert parsed.total == 2


def test_unknown_csv_columns_become_lead_properties() -> None:
    parsed = parse_csv_rows("email,campaign,company_size\nada@example.com,spring-fair,250\n")

    ((_, lead),) = parsed.leads
    assert lead.properties == {"campaign": "spring-fair"}
    assert lead.company_size == 250


def test_a_row_with_more_cells_than_headers_is_an_error_of_that_row() -> None:
    parsed = parse_csv_rows("email\nada@example.com\nb@example.com,extra\n")

    assert [e.line for e in parsed.errors] == [3]
    assert len(parsed.leads) == 1


def test_a_csv_without_an_email_column_is_refused_as_a_whole() -> None:
    with pytest.raises(ValueError, match="email column"):
        parse_csv_rows("name\nAda\n")


def test_row_errors_never_echo_the_rejected_value() -> None:
    parsed = parse_csv_rows("email,company_size\n<script>@@,lots\n")

    assert parsed.errors
    assert all("<script>" not in e.reason and "lots" not in e.reason for e in parsed.errors)


def test_json_rows_are_numbered_from_one_and_may_be_anything() -> None:
    parsed = parse_json_rows([{"email": "ada@example.com"}, 42, {"email": "x"}])

    assert [line for line, _ in parsed.leads] == [1]
    assert sorted({e.line for e in parsed.errors}) == [2, 3]


def test_more_than_ten_thousand_rows_are_refused() -> None:
    with pytest.raises(TooManyRows):
        parse_json_rows([{"email": f"l{i}@example.com"} for i in range(MAX_ROWS + 1)])


def test_a_csv_file_may_hold_ten_times_the_rows_of_a_json_array() -> None:
    rows = "".join(f"l{i}@example.com\n" for i in range(MAX_ROWS + 1))

    parsed = parse_csv_rows("email\n" + rows)

    assert parsed.total == MAX_ROWS + 1 and MAX_CSV_ROWS == 10 * MAX_ROWS
